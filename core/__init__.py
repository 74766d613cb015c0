"""Settings, domain services and exceptions; imports no Flask, torch or Celery."""
