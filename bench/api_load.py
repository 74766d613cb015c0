"""Submission latency of the API under many concurrent clients, on loopback.

    python bench/api_load.py [--clients 100] [--seconds 20] [--rate 100] [--threads 32] [--processes 1]

Starts SeaweedFS, a scratch Postgres database and `unmask api` as its own process (Redis db 14 as
the broker; no worker, so jobs stay queued), then `--clients` clients, each on its own keep-alive
connection, POST a 10 KB JPEG (256 px) to /v1/jobs:

- closed loop: every client sends its next request as soon as the last one is answered (the
  most load those clients can make; latency then grows with the queue they build);
- open loop (`--rate` requests/s, Poisson arrivals spread over the same clients): latency is
  measured from each request's scheduled time, so a slow server is not hidden by clients
  that waited for it.

The clients are asyncio streams in one thread sending a request built once, so the load
generator takes little of the cores it shares with the API, the database, Redis and SeaweedFS
(a client thread per connection with `requests`, as before 15:10 on 2026-11-28, took several
times more). Its own CPU use and the API's are in the result.

Writes bench/results/api-load.json and a section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
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


def upload_request(host: str, port: int, key: str, body: bytes) -> bytes:
    """The whole HTTP/1.1 request of one multipart upload, built once and sent as is."""
    boundary = "unmask-load-boundary"
    payload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="face.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()
    return head + payload


class Client:
    """One keep-alive connection; sends a request and reads the status and the whole body.
    A broken connection is opened again on the next request."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, request: bytes) -> int:
        """The response's status, or 0 when the connection failed."""
        try:
            if self.streams is None:
                self.streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self.streams
            writer.write(request)
            await writer.drain()
            status = int((await reader.readuntil(b"\r\n")).split()[1])
            length, close = 0, False
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection":
                    close = value.strip().lower() == "close"
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.close()
            return 0
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


class Tally:
    """Latencies of accepted submissions (202); everything else counts as an error."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: dict[int, int] = {}  # by status; 0: the connection failed

    def add(self, status: int, seconds: float) -> None:
        if status == 202:
            self.latencies.append(seconds)
        else:
            self.errors[status] = self.errors.get(status, 0) + 1

    def stats(self, seconds: float) -> dict:
        return {**stats(self.latencies, sum(self.errors.values()), seconds), "error_statuses": self.errors}


def closed_loop(url: str, key: str, body: bytes, clients: int, seconds: float) -> dict:
    """Every client sends its next upload as soon as the last one is answered."""
    host, port = url.removeprefix("http://").split(":")
    request, tally = upload_request(host, int(port), key, body), Tally()

    async def client(stop_at: float) -> None:
        connection = Client(host, int(port))
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            tally.add(await connection.send(request), time.perf_counter() - start)
        connection.close()

    async def run() -> None:
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(client(stop_at) for _ in range(clients)))

    asyncio.run(run())
    return {"mode": "closed", "clients": clients, **tally.stats(seconds)}


def open_loop(url: str, key: str, body: bytes, clients: int, seconds: float, rate: float) -> dict:
    """Poisson arrivals at `rate` per second, each sent on whichever of the clients'
    connections is free; latency counts from the scheduled time, waiting for a free
    connection included."""
    host, port = url.removeprefix("http://").split(":")
    request, tally = upload_request(host, int(port), key, body), Tally()

    async def one(scheduled: float, idle: asyncio.Queue[Client]) -> None:
        connection = await idle.get()
        status = await connection.send(request)
        tally.add(status, time.perf_counter() - scheduled)
        idle.put_nowait(connection)

    async def run() -> None:
        idle: asyncio.Queue[Client] = asyncio.Queue()
        for _ in range(clients):
            idle.put_nowait(Client(host, int(port)))
        rng, tasks = random.Random(0), []
        at = time.perf_counter() + 0.5
        end = at + seconds
        while at < end:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            tasks.append(asyncio.create_task(one(at, idle)))
            at += rng.expovariate(rate)
        await asyncio.gather(*tasks)
        while not idle.empty():
            idle.get_nowait().close()

    asyncio.run(run())
    return {
        "mode": "open",
        "clients": clients,
        "rate_per_s": rate,
        **tally.stats(seconds),
    }


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
                cpu, wall, own = cpu_seconds(proc.pid), time.monotonic(), time.process_time()
                if mode == "closed":
                    run = closed_loop(url, key, body, args.clients, args.seconds)
                else:
                    run = open_loop(url, key, body, args.clients, args.seconds, args.rate)
                took = time.monotonic() - wall
                run["api_cpu_share"] = round((cpu_seconds(proc.pid) - cpu) / took, 2)
                run["load_cpu_share"] = round((time.process_time() - own) / took, 2)
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
                r.get("load_cpu_share", "–"),
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
                "load generator cores",
            ],
            rows,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
