"""Alembic creates and removes the whole schema on Postgres; models and migrations agree."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tests import services
from unmask.migrations import downgrade, upgrade
from unmask.storage.db import make_engine
from unmask.storage.models import Base

pytestmark = pytest.mark.integration


def test_upgrade_downgrade_round_trip_matches_models():
    with services.scratch_database() as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            assert {"jobs", "faces", "alembic_version"} <= set(inspect(engine).get_table_names())
            with engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == []  # no model change is missing a migration
            downgrade(url, "base")
            assert set(inspect(engine).get_table_names()) == {"alembic_version"}
            upgrade(url)
            assert "faces" in inspect(engine).get_table_names()
        finally:
            engine.dispose()
