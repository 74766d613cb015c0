"""Readiness: can this process reach the database, the broker and the object store?"""

from __future__ import annotations

from sqlalchemy import text

from unmask.core.wiring import Services


def check_readiness(services: Services) -> dict[str, str]:
    """`ok` or the error, for each dependency; never raises."""
    checks: dict[str, str] = {}
    for name, check in (
        ("database", _database),
        ("broker", lambda s: s.queue.ping()),
        ("store", lambda s: s.store.ping()),
    ):
        try:
            check(services)
            checks[name] = "ok"
        except Exception as exc:  # readiness reports every failure instead of raising
            checks[name] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
    return checks


def _database(services: Services) -> None:
    with services.sessions() as session:
        session.execute(text("SELECT 1"))
