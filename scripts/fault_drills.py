"""Fault drills at full size, with real processes: Postgres, Redis, SeaweedFS, the API and
worker processes. Writes bench/results/fault-drills.json and prints a table.

    .venv/bin/python scripts/fault_drills.py [--only kill-worker,restart-redis,...]

Drills:
  kill-worker     SIGKILL the worker mid-batch of 500, restart it: every job succeeds once
  restart-redis   kill Redis (no persistence) mid-batch of 200 and restart it: nothing lost
  stop-postgres   stop Postgres for 30 s mid-batch (pg_ctlcluster; stops the machine's server):
                  the API answers 503 with Retry-After, never 500; nothing lost afterwards
  store-down      stop the object store mid-batch: jobs retry, then fail with a code
  memory          1,000 jobs through one worker: its resident memory, sampled as it goes
The reconciler's clock is shortened (tests/integration/test_faults.py: FAST) so drills are quick.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import services  # noqa: E402
from tests.conftest import LABELLED  # noqa: E402
from tests.integration.test_faults import (  # noqa: E402
    assert_complete,
    fault_stack,
    redis_server,
    statuses,
    submit,
    wait_until,
)

FACE = (LABELLED / "real" / "studio__128_03.jpg").read_bytes()
RESULTS = ROOT / "bench" / "results" / "fault-drills.json"


def rss_mb(pid: int) -> float:
    line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def test_weights(folder: Path) -> Path:
    import torch

    from unmask.detector.registry import build_inception_resnet_v1

    torch.manual_seed(1234)
    path = folder / "drill-irv1.pt"
    torch.save({"model_state_dict": build_inception_resnet_v1().state_dict()}, path)
    return path


def drill_kill_worker(work: Path, weights: Path, s3: str, n: int = 500) -> dict:
    with fault_stack(work, weights, s3, services.REDIS_URL.replace("/11", "/14")) as (
        env,
        http,
        url,
        sessions,
        store,
    ):
        services.flush_redis(env["UNMASK_BROKER_URL"])
        with services.worker_process(env, work / "worker-1.log") as worker:
            ids = submit(http, url, FACE, n)
            wait_until(lambda: statuses(sessions, ids).get("succeeded", 0) >= n // 5, 900, "too slow")
            wait_until(lambda: statuses(sessions, ids).get("running", 0) >= 1, 60, "no job in hand")
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
        at_kill = statuses(sessions, ids)
        restarted = time.monotonic()
        with services.worker_process(env, work / "worker-2.log"):
            wait_until(lambda: statuses(sessions, ids).get("succeeded", 0) == n, 1800, "unfinished")
        elapsed = time.monotonic() - restarted
        assert_complete(sessions, store, ids)
        return {
            "jobs": n,
            "at_kill": at_kill,
            "succeeded": n,
            "seconds_after_restart": round(elapsed, 1),
            "duplicate_faces": 0,
            "orphaned_objects": 0,
        }


def drill_restart_redis(work: Path, weights: Path, s3: str, n: int = 200) -> dict:
    port = services.free_port()
    with fault_stack(work, weights, s3, f"redis://127.0.0.1:{port}/0") as (env, http, url, sessions, store):
        with redis_server(port) as redis, services.worker_process(env, work / "worker.log"):
            ids = submit(http, url, FACE, n)
            wait_until(lambda: statuses(sessions, ids).get("succeeded", 0) >= n // 5, 900, "too slow")
            at_kill = statuses(sessions, ids)
            redis.kill()
            redis.wait(10)
            restarted = time.monotonic()
            with redis_server(port):
                wait_until(lambda: statuses(sessions, ids).get("succeeded", 0) == n, 1800, "unfinished")
            elapsed = time.monotonic() - restarted
        assert_complete(sessions, store, ids)
        return {
            "jobs": n,
            "at_kill": at_kill,
            "succeeded": n,
            "lost": 0,
            "seconds_after_restart": round(elapsed, 1),
        }


def drill_stop_postgres(work: Path, weights: Path, s3: str, n: int = 100, seconds: int = 30) -> dict:
    import requests

    cluster = ["pg_ctlcluster", "--skip-systemctl-redirect", os.listdir("/etc/postgresql")[0], "main"]
    with fault_stack(work, weights, s3, services.REDIS_URL.replace("/11", "/14")) as (
        env,
        http,
        url,
        sessions,
        store,
    ):
        services.flush_redis(env["UNMASK_BROKER_URL"])
        with services.worker_process(env, work / "worker.log"):
            ids = submit(http, url, FACE, n)
            wait_until(lambda: statuses(sessions, ids).get("succeeded", 0) >= n // 5, 900, "too slow")
            subprocess.run([*cluster, "stop", "-m", "fast"], check=True)
            answers: dict[str, int] = {}
            try:
                until = time.monotonic() + seconds
                while time.monotonic() < until:
                    r = http.get(f"{url}/v1/jobs", timeout=10)
                    key = f"{r.status_code} retry-after={'Retry-After' in r.headers}"
                    answers[key] = answers.get(key, 0) + 1
                    time.sleep(0.5)
            finally:
                subprocess.run([*cluster, "start"], check=True)
                services.wait_for_port(5432, 60)
            back = time.monotonic()
            wait_until(lambda: statuses(sessions, ids).get("succeeded", 0) == n, 1800, "unfinished")
            elapsed = time.monotonic() - back
            assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
        assert_complete(sessions, store, ids)
        return {
            "jobs": n,
            "outage_seconds": seconds,
            "api_answers_during_outage": answers,
            "succeeded": n,
            "seconds_after_return": round(elapsed, 1),
        }


def drill_store_down(work: Path, weights: Path, n: int = 20) -> dict:
    store_dir = work / "weed"
    with services.seaweedfs(store_dir) as s3:
        stack = fault_stack(work, weights, s3, services.REDIS_URL.replace("/11", "/14"))
        env, http, url, sessions, store = stack.__enter__()
    # The store is down from here on; submissions fail at once, queued jobs retry then fail.
    try:
        env = {**env, "UNMASK_TASK_MAX_RETRIES": "2"}
        with sessions.begin() as session:
            from tests import factories

            ids = [factories.make_job(session, owner="drill", input_bucket=store.bucket).id for _ in range(n)]
        from unmask.api.queue import celery_queue
        from unmask.core.settings import Settings

        queue = celery_queue(Settings(broker_url=env["UNMASK_BROKER_URL"]))
        with services.worker_process(env, work / "worker.log"):
            for job_id in ids:
                queue.enqueue_detect(job_id)
            wait_until(lambda: statuses(sessions, ids).get("failed", 0) == n, 900, "jobs still retrying")
            submit_answer = http.post(f"{url}/v1/jobs", files={"image": ("f.jpg", FACE)}, timeout=60)
        from sqlalchemy import func, select

        from unmask.storage.models import Job

        with sessions() as session:
            codes = dict(
                session.execute(
                    select(Job.error_code, func.count()).where(Job.id.in_(ids)).group_by(Job.error_code)
                ).all()
            )
        return {
            "jobs": n,
            "failed_with": codes,
            "submit_while_down": submit_answer.status_code,
            "submit_code": submit_answer.json()["error"]["code"],
        }
    finally:
        stack.__exit__(None, None, None)


def drill_memory(work: Path, weights: Path, s3: str, n: int = 1000) -> dict:
    with fault_stack(work, weights, s3, services.REDIS_URL.replace("/11", "/14")) as (
        env,
        http,
        url,
        sessions,
        store,
    ):
        services.flush_redis(env["UNMASK_BROKER_URL"])
        with services.worker_process(env, work / "worker.log") as worker:
            ids = submit(http, url, FACE, n)
            samples = []
            while (done := statuses(sessions, ids).get("succeeded", 0)) < n:
                samples.append((done, round(rss_mb(worker.pid), 1)))
                time.sleep(2)
            samples.append((n, round(rss_mb(worker.pid), 1)))
        after_warmup = [mb for done, mb in samples if done >= 50]
        return {
            "jobs": n,
            "rss_mb_after_50": after_warmup[0],
            "rss_mb_at_end": after_warmup[-1],
            "rss_mb_max": max(mb for _, mb in samples),
            "samples": samples[:: max(1, len(samples) // 20)],
        }


def save(results: dict) -> None:
    """Write after every drill, so a failing drill keeps the others' figures."""
    results["machine"] = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def main() -> int:
    names = ["kill-worker", "restart-redis", "stop-postgres", "store-down", "memory"]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(names))
    args = parser.parse_args()
    chosen = [n for n in args.only.split(",") if n]
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    with tempfile.TemporaryDirectory(prefix="unmask-drills-") as tmp:
        work = Path(tmp)
        weights = test_weights(work)
        with services.seaweedfs(work / "s3") as s3:
            for name in (n for n in chosen if n != "store-down"):  # store-down runs its own store
                folder = work / name
                folder.mkdir()
                started = time.monotonic()
                print(f"== {name}", flush=True)
                if name == "kill-worker":
                    outcome = drill_kill_worker(folder, weights, s3)
                elif name == "restart-redis":
                    outcome = drill_restart_redis(folder, weights, s3)
                elif name == "stop-postgres":
                    outcome = drill_stop_postgres(folder, weights, s3)
                elif name == "memory":
                    outcome = drill_memory(folder, weights, s3)
                else:
                    continue
                outcome["wall_seconds"] = round(time.monotonic() - started, 1)
                results[name] = outcome
                print(json.dumps(outcome), flush=True)
                save(results)
        if "store-down" in chosen:
            folder = work / "store-down"
            folder.mkdir()
            print("== store-down", flush=True)
            results["store-down"] = drill_store_down(folder, weights)
            print(json.dumps(results["store-down"]), flush=True)
    results["machine"] = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
