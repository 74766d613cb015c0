"""Submission latency of the API under many concurrent clients, on loopback.

    python bench/api_load.py [--clients 100] [--seconds 20] [--rate 100] [--threads 32] [--processes 1]

Starts SeaweedFS, a scratch Postgres database and `unmask api` as its own process (Redis db 14 as
the broker; no worker, so jobs stay queued), then `--clients` clients, each on its own keep-alive
connection, POST a 20 KB JPEG to /v1/jobs:

- closed loop: every client sends its next request as soon as the last one is answered (the
  most load those clients can make; latency then grows with the queue they build);
- open loop (`--rate` requests/s, Poisson arrivals spread over the same clients): latency is
  measured from each request's scheduled time, so a slow server is not hidden by clients
  that waited for it.

Writes bench/results/api-load.json and a section of bench/RESULTS.md. The load generator runs
on the same cores as the API; its own CPU use is in the result.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import append_section  # noqa: E402
from tests import services  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "api-load.json"
BROKER = services.REDIS_URL.rsplit("/", 1)[0] + "/14"


def picture() -> bytes:
    from PIL import Image

    image = Image.open(ROOT / "tests" / "fixtures" / "labelled" / "real" / "studio__128_03.jpg")
    buf = io.BytesIO()
    image.convert("RGB").resize((256, 256)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def stats(latencies: list[float], errors: int, seconds: float) -> dict:
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": round(max(latencies) * 1000, 1),
    }


class Submitter:
    """Uploads from many client threads, each on its own keep-alive session; keeps the latency
    of every accepted submission and counts the rest."""

    def __init__(self, url: str, key: str, body: bytes) -> None:
        self.url, self.key, self.body = url, key, body
        self.latencies: list[float] = []
        self.errors = 0
        self.lock = threading.Lock()

    def session(self):  # noqa: ANN201
        import requests

        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.key}"
        return session

    def submit(self, session, since: float) -> None:  # noqa: ANN001
        """One upload; its latency counts from `since` (a perf_counter reading)."""
        import requests

        files = {"image": ("face.jpg", self.body, "image/jpeg")}
        try:
            status = session.post(f"{self.url}/v1/jobs", files=files).status_code
        except requests.ConnectionError:  # counted, not fatal to the client
            status = 0
        took = time.perf_counter() - since
        with self.lock:
            if status == 202:
                self.latencies.append(took)
            else:
                self.errors += 1

    def stats(self, seconds: float) -> dict:
        return stats(self.latencies, self.errors, seconds)


def closed_loop(url: str, key: str, body: bytes, clients: int, seconds: float) -> dict:
    submitter = Submitter(url, key, body)
    stop_at = time.monotonic() + seconds

    def client() -> None:
        session = submitter.session()
        while time.monotonic() < stop_at:
            submitter.submit(session, time.perf_counter())

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"mode": "closed", "clients": clients, **submitter.stats(seconds)}


def open_loop(url: str, key: str, body: bytes, clients: int, seconds: float, rate: float) -> dict:
    import queue

    submitter = Submitter(url, key, body)
    due: queue.Queue[float | None] = queue.Queue()

    def client() -> None:
        session = submitter.session()
        while (scheduled := due.get()) is not None:
            time.sleep(max(0.0, scheduled - time.perf_counter()))
            submitter.submit(session, scheduled)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    rng = random.Random(0)
    at = time.perf_counter() + 0.5
    end = at + seconds
    while at < end:
        due.put(at)
        at += rng.expovariate(rate)
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join()
    return {"mode": "open", "clients": clients, "rate_per_s": rate, **submitter.stats(seconds)}


def api_process(env: dict[str, str], port: int, threads: int, processes: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unmask",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--threads",
            str(threads),
            "--processes",
            str(processes),
        ],
        env={**os.environ, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (gunicorn's workers), alive ones only."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=100, help="open-loop requests/s")
    parser.add_argument("--threads", type=int, default=32, help="request threads per API process")
    parser.add_argument("--processes", type=int, default=1, help="API processes (gunicorn when > 1)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from unmask.core.keys import KeyService
    from unmask.migrations import upgrade
    from unmask.storage.db import make_engine, make_session_factory

    body = picture()
    with (
        tempfile.TemporaryDirectory(prefix="unmask-load-") as tmp,
        services.seaweedfs(Path(tmp) / "s3") as s3,
        services.scratch_database() as db_url,
    ):
        upgrade(db_url)
        key = KeyService(sessions=make_session_factory(make_engine(db_url))).create(tenant="load")[1]
        env = {
            "UNMASK_DATA_DIR": str(Path(tmp) / "data"),
            "UNMASK_DATABASE_URL": db_url,
            "UNMASK_BROKER_URL": BROKER,
            "UNMASK_STORE": "s3",
            "UNMASK_S3_ENDPOINT_URL": s3,
            "UNMASK_S3_ACCESS_KEY": services.S3_ACCESS,
            "UNMASK_S3_SECRET_KEY": services.S3_SECRET,
            "UNMASK_S3_BUCKET": "load",
            "UNMASK_SECRET_KEY": "load-test-secret",
            "UNMASK_RATE_LIMIT": "100000/second",
        }
        port = services.free_port()
        proc = api_process(env, port, args.threads, args.processes, Path(tmp) / "api.log")
        try:
            services.wait_for_port(port, 60)
            url = f"http://127.0.0.1:{port}"
            closed_loop(url, key, body, 8, 2)  # warm-up: connections, pools, caches
            runs = []
            for mode in ("closed", "open"):
                cpu, wall = cpu_seconds(proc.pid), time.monotonic()
                if mode == "closed":
                    run = closed_loop(url, key, body, args.clients, args.seconds)
                else:
                    run = open_loop(url, key, body, args.clients, args.seconds, args.rate)
                run["api_cpu_share"] = round((cpu_seconds(proc.pid) - cpu) / (time.monotonic() - wall), 2)
                runs.append(run)
                print(json.dumps(run), flush=True)
        finally:
            services.stop(proc)
            services.flush_redis(BROKER)
    report = {
        "command": "python bench/api_load.py " + " ".join(sys.argv[1:]),
        "api_threads": args.threads,
        "api_processes": args.processes,
        "body_bytes": len(body),
        "runs": runs,
        "machine": {
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        rows = [
            (
                r["mode"],
                r["clients"],
                r.get("rate_per_s", "–"),
                r["requests_per_s"],
                r["p50_ms"],
                r["p90_ms"],
                r["p99_ms"],
                r["errors"],
                r["api_cpu_share"],
            )
            for r in runs
        ]
        server = (
            f"waitress, {args.threads} threads"
            if args.processes == 1
            else f"gunicorn, {args.processes} processes × {args.threads} threads"
        )
        append_section(
            f"{report['machine']['date']} · API submissions · {os.cpu_count()} CPUs, loopback",
            f"`{report['command']}` ({server}, {len(body)} B uploads)",
            [
                "mode",
                "clients",
                "offered /s",
                "served /s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "errors",
                "API cores",
            ],
            rows,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
