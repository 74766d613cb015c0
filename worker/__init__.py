"""Celery app factory and thin tasks; the work itself lives in core and detector."""
