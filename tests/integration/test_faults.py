"""Nothing is lost when processes die: real worker processes, a Redis server of the test's own,
Postgres and SeaweedFS. Small batches here; scripts/fault-drills.py runs the full sizes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker

from tests import services
from unmask.core.settings import Settings
from unmask.migrations import upgrade
from unmask.storage.models import Face, Job

pytestmark = pytest.mark.integration

FAST = {  # the reconciler's clock, shortened so the drills fit in a test
    "UNMASK_RECONCILE_EVERY_SECONDS": "1",
    "UNMASK_HEARTBEAT_SECONDS": "0.5",
    "UNMASK_HEARTBEAT_DEADLINE_SECONDS": "4",
    "UNMASK_QUEUED_DEADLINE_SECONDS": "4",
    "UNMASK_RATE_LIMIT": "1000/second",  # the drills submit as fast as they can
}


@contextmanager
def redis_server(port: int):
    """A Redis of this test's own, without persistence, so killing it loses its queue."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        services.wait_for_port(port, 20)
        yield proc
    finally:
        services.stop(proc, 5)


@contextmanager
def fault_stack(tmp_path: Path, weights: Path, s3_url: str, broker_url: str):
    """API in this process, a worker process, a scratch database; yields (env, http, url, sessions)."""
    from unmask.api import create_app

    with services.scratch_database() as db_url:
        env = {
            "UNMASK_DATA_DIR": str(tmp_path / "data"),
            "UNMASK_DATABASE_URL": db_url,
            "UNMASK_BROKER_URL": broker_url,
            "UNMASK_STORE": "s3",
            "UNMASK_S3_ENDPOINT_URL": s3_url,
            "UNMASK_S3_ACCESS_KEY": services.S3_ACCESS,
            "UNMASK_S3_SECRET_KEY": services.S3_SECRET,
            "UNMASK_S3_BUCKET": f"faults-{uuid.uuid4().hex[:8]}",
            "UNMASK_WEIGHTS": str(weights),
            "UNMASK_MODEL": "reference-irv1",
            "UNMASK_DEVICE": "cpu",
            **FAST,
        }
        settings = Settings(**{k.removeprefix("UNMASK_").lower(): v for k, v in env.items()})
        upgrade(db_url)
        app = create_app(settings)
        app.extensions["unmask"].store.ensure_bucket()
        _, secret = app.extensions["unmask"].keys.create(tenant="drill")
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {secret}"
        engine = create_engine(db_url, pool_pre_ping=True)  # survives a database restart
        try:
            with services.api_server(app) as url:
                yield env, http, url, sessionmaker(engine), app.extensions["unmask"].store
        finally:
            engine.dispose()


def statuses(sessions, ids) -> dict[str, int]:
    with sessions() as session:
        rows = session.execute(select(Job.status, func.count()).where(Job.id.in_(ids)).group_by(Job.status))
        return dict(rows.all())


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def submit(http, url: str, data: bytes, n: int) -> list[uuid.UUID]:
    ids = []
    for _ in range(n):
        response = http.post(f"{url}/v1/jobs", files={"image": ("face.jpg", data)}, timeout=30)
        assert response.status_code == 202, response.text
        ids.append(uuid.UUID(response.json()["id"]))
    return ids


def assert_complete(sessions, store, ids) -> None:
    """Every job succeeded once: one face row each, and exactly its own overlays in the store."""
    assert statuses(sessions, ids) == {"succeeded": len(ids)}
    with sessions() as session:
        faces = dict(
            session.execute(
                select(Face.job_id, func.count()).where(Face.job_id.in_(ids)).group_by(Face.job_id)
            ).all()
        )
    assert faces == {job_id: 1 for job_id in ids}  # no duplicate faces
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix="overlays/")
    keys = [obj["Key"] for obj in listed.get("Contents", [])]
    assert sorted(keys) == sorted(f"overlays/drill/{i}/{n}" for i in ids for n in ("face-0.jpg", "image.jpg"))


def test_a_killed_worker_loses_no_job(tmp_path, test_weights, s3_url, face_bytes):
    with fault_stack(tmp_path, test_weights, s3_url, services.REDIS_URL.replace("/11", "/12")) as stack:
        env, http, url, sessions, store = stack
        services.flush_redis(env["UNMASK_BROKER_URL"])
        log = tmp_path / "worker-1.log"
        with services.worker_process(env, log) as worker:
            ids = submit(http, url, face_bytes, 10)
            wait_until(lambda: statuses(sessions, ids).get("succeeded", 0) >= 2, 120, "no job finished")
            # The batch path holds several jobs at once: kill it with jobs in hand.
            wait_until(lambda: statuses(sessions, ids).get("running", 0) >= 1, 60, "no job in hand")
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
        in_hand = statuses(sessions, ids)
        assert in_hand.get("running", 0) >= 1 and in_hand.get("succeeded", 0) < 10
        with services.worker_process(env, tmp_path / "worker-2.log"):
            wait_until(
                lambda: statuses(sessions, ids).get("succeeded", 0) == 10,
                180,
                f"jobs after the restart: {statuses(sessions, ids)}",
            )
        assert_complete(sessions, store, ids)


def test_a_restarted_redis_loses_no_job(tmp_path, test_weights, s3_url, face_bytes):
    port = services.free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    with fault_stack(tmp_path, test_weights, s3_url, broker) as stack:
        env, http, url, sessions, store = stack
        with redis_server(port) as redis, services.worker_process(env, tmp_path / "worker.log"):
            ids = submit(http, url, face_bytes, 10)
            wait_until(lambda: statuses(sessions, ids).get("succeeded", 0) >= 2, 120, "no job finished")
            redis.kill()  # the queued ids die with it
            redis.wait(10)
            with redis_server(port):
                wait_until(
                    lambda: statuses(sessions, ids).get("succeeded", 0) == 10,
                    180,
                    f"jobs after Redis came back: {statuses(sessions, ids)}",
                )
        assert_complete(sessions, store, ids)


def test_database_down_is_a_503_with_retry_after(tmp_path):
    from unmask.api import create_app

    dead = f"postgresql+psycopg://postgres@127.0.0.1:{services.free_port()}/none"
    app = create_app(Settings(data_dir=tmp_path, database_url=dead, secret_key="s"))
    client = app.test_client()
    response = client.get("/v1/jobs", headers={"Authorization": "Bearer um_anything"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert client.get("/readyz").status_code == 503


def test_sigterm_lets_the_worker_finish_the_job_in_hand(tmp_path, test_weights, s3_url, face_bytes):
    with fault_stack(tmp_path, test_weights, s3_url, services.REDIS_URL.replace("/11", "/12")) as stack:
        env, http, url, sessions, store = stack
        services.flush_redis(env["UNMASK_BROKER_URL"])
        with services.worker_process(env, tmp_path / "worker.log") as worker:
            ids = submit(http, url, face_bytes, 3)
            wait_until(lambda: statuses(sessions, ids).get("running", 0) >= 1, 60, "no job in hand")
            with sessions() as session:
                in_hand = session.scalars(
                    select(Job.id).where(Job.id.in_(ids), Job.status == "running")
                ).all()
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(60) == 0  # a warm shutdown, not a kill
        with sessions() as session:
            for job_id in in_hand:  # every job the worker held was finished before it stopped
                job = session.get(Job, job_id)
                assert job is not None and job.status == "succeeded" and job.attempts == 1
