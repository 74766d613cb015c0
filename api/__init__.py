"""Flask API: app factory, blueprints, schemas and error mapping. Never imports torch."""

from unmask.api.app import create_app

__all__ = ["create_app"]
