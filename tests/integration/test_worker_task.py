"""The detect task itself, run eagerly in this process against the real database: outages are
retried with the attempt counted, then the job is given up with a code, never left running."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from tests import factories, services
from unmask.core.settings import Settings
from unmask.core.tasks import DETECT_TASK
from unmask.migrations import upgrade
from unmask.storage.models import Job
from unmask.worker.app import create_celery

pytestmark = pytest.mark.integration


def test_store_outage_is_retried_then_given_up(tmp_path, test_weights):
    dead_store = f"http://127.0.0.1:{services.free_port()}"  # nothing listens there
    with services.scratch_database() as url:
        upgrade(url)
        settings = Settings(
            data_dir=tmp_path,
            database_url=url,
            broker_url=services.REDIS_URL,
            store="s3",
            s3_endpoint_url=dead_store,
            s3_access_key="x",
            s3_secret_key="y",
            weights=test_weights,
            model="reference-irv1",
            device="cpu",
            task_max_retries=2,
        )
        engine = create_engine(url)
        sessions = sessionmaker(engine, expire_on_commit=False)
        with sessions.begin() as session:
            job_id = factories.make_job(session).id
        task = create_celery(settings).tasks[DETECT_TASK]
        outcome = task.apply(args=[str(job_id)]).get()
        with sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            assert outcome == "failed"
            assert (job.status, job.error_code) == ("failed", "transient_error_exhausted")
            assert job.attempts == 3  # the first try and two retries
            assert "gave up after 3 attempts" in (job.error_message or "")
        engine.dispose()
