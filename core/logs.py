"""Logging for every process: text for a terminal, or one JSON object per line that carries the
job and tenant a line is about (python-json-logger)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

_context: ContextVar[dict[str, str]] = ContextVar("unmask_log_context", default={})  # noqa: B039

FIELDS = ("job_id", "tenant")


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Lines logged inside the block carry these fields (job_id, tenant)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str) -> None:
    """Add fields for the rest of this context (a request)."""
    _context.set({**_context.get(), **fields})


def clear() -> None:
    """Start a new context (a new request on a reused thread)."""
    _context.set({})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        values = _context.get()
        for name in FIELDS:
            setattr(record, name, values.get(name))
        return True


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(job_id)s %(tenant)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
