"""Persistence: SQLAlchemy engine, sessions and models; the object store."""
