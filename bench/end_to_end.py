"""`bench/throughput.py --e2e`: real jobs through the API, Redis, Postgres, SeaweedFS and an
`unmask worker` process, one batch size after another, on the same images.

For each worker batch size (1, then the production default): start a worker, submit `--images`
uploads from several client threads, wait until every job has finished, and read each job's
`created_at` and `finished_at` from the database. Reports end-to-end images/s (first submission
to last finish), p50/p99 job latency, and from the worker's metrics how many images each model
batch held and how many job results each database commit recorded; writes
bench/results/throughput-e2e-<device>.json and a section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import append_section  # noqa: E402
from bench.throughput import RESULTS_DIR, make_images  # noqa: E402

# The stack helper shortens the reconciler's clock for fault tests; measure with the defaults.
PRODUCTION_CLOCKS = {
    "UNMASK_RECONCILE_EVERY_SECONDS": "30",
    "UNMASK_HEARTBEAT_SECONDS": "10",
    "UNMASK_HEARTBEAT_DEADLINE_SECONDS": "60",
    "UNMASK_QUEUED_DEADLINE_SECONDS": "120",
}


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def group_sizes(metrics_port: int) -> dict[str, float | None]:
    """Mean items per group of each of the worker's batchers, from its Prometheus endpoint."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    sums: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "unmask_worker_batch_items":
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_count")):
                    kind = sample.name.rsplit("_", 1)[1]
                    sums.setdefault(sample.labels["batcher"], {})[kind] = sample.value
    mean = {name: round(v["sum"] / v["count"], 2) if v.get("count") else None for name, v in sums.items()}
    return {
        "images_per_model_batch": mean.get("model-batcher"),
        "jobs_per_commit": mean.get("result-recorder"),
    }


def run_once(images: list[bytes], batch: int, device: str, work: Path, s3: str, broker: str) -> dict:
    from sqlalchemy import select

    from tests import services
    from tests.integration.test_faults import fault_stack, statuses
    from unmask.detector.registry import DEFAULT_MODEL, DEFAULT_WEIGHTS
    from unmask.storage.models import Job

    weights = DEFAULT_WEIGHTS[DEFAULT_MODEL]
    with fault_stack(work, weights, s3, broker) as (env, http, url, sessions, _store):
        env = {
            **env,
            **PRODUCTION_CLOCKS,
            "UNMASK_WORKER_BATCH_SIZE": str(batch),
            "UNMASK_DEVICE": device,
            "UNMASK_RATE_LIMIT": "1000/second",
            "UNMASK_WORKER_METRICS_PORT": str(metrics_port := services.free_port()),
        }
        services.flush_redis(broker)
        with services.worker_process(env, work / f"worker-{batch}.log") as worker:

            def submit(data: bytes) -> str:
                response = http.post(f"{url}/v1/jobs", files={"image": ("face.jpg", data)}, timeout=60)
                response.raise_for_status()
                return response.json()["id"]

            started = time.monotonic()
            with ThreadPoolExecutor(4) as pool:
                ids = list(pool.map(submit, images))
            deadline = time.monotonic() + 3600
            while sum(statuses(sessions, ids).get(s, 0) for s in ("succeeded", "failed")) < len(ids):
                if time.monotonic() > deadline:
                    raise TimeoutError("jobs did not finish within an hour")
                time.sleep(0.25)
            elapsed = time.monotonic() - started
            groups = group_sizes(metrics_port)
            rss_mb = round(
                int(Path(f"/proc/{worker.pid}/status").read_text().split("VmHWM:")[1].split()[0]) / 1024, 1
            )
        with sessions() as session:
            rows = session.execute(select(Job.created_at, Job.finished_at, Job.status).where(Job.id.in_(ids)))
            latencies = [(f - c).total_seconds() for c, f, _ in rows]
        counts = statuses(sessions, ids)
    return {
        "worker_batch_size": batch,
        "images": len(images),
        "succeeded": counts.get("succeeded", 0),
        "seconds": round(elapsed, 1),
        "images_per_s": round(len(images) / elapsed, 2),
        "p50_latency_ms": percentile_ms(latencies, 0.5),
        "p99_latency_ms": percentile_ms(latencies, 0.99),
        "worker_peak_rss_mb": rss_mb,
        **groups,
    }


def main(args: argparse.Namespace) -> int:
    from tests import services

    images = make_images(args.images if not args.quick else 16, args.size)
    batches = [1, args.batch or (32 if args.device.startswith("cuda") else 8)]
    broker = services.REDIS_URL.rsplit("/", 1)[0] + "/13"
    runs = []
    with tempfile.TemporaryDirectory(prefix="unmask-e2e-") as tmp, services.seaweedfs(Path(tmp) / "s3") as s3:
        for batch in batches:
            work = Path(tmp) / f"b{batch}"
            work.mkdir()
            runs.append(run_once(images, batch, args.device, work, s3, broker))
            print(json.dumps(runs[-1]), flush=True)
    report = {
        "command": "python bench/throughput.py " + " ".join(sys.argv[1:]),
        "size": args.size,
        "runs": runs,
        "ratio_batch_vs_single": round(runs[-1]["images_per_s"] / runs[0]["images_per_s"], 2),
        "machine": {
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "device": args.device,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    if not args.no_write:
        device = "cuda" if args.device.startswith("cuda") else "cpu"
        (RESULTS_DIR / f"throughput-e2e-{device}.json").write_text(json.dumps(report, indent=2) + "\n")
        rows = [
            (
                r["worker_batch_size"],
                r["images_per_s"],
                r["p50_latency_ms"],
                r["p99_latency_ms"],
                r["worker_peak_rss_mb"],
                r.get("images_per_model_batch") or "–",
                r.get("jobs_per_commit") or "–",
            )
            for r in runs
        ]
        append_section(
            f"{report['machine']['date']} · end to end (API → Redis → worker → Postgres + S3) · "
            f"{device}, {os.cpu_count()} CPUs · {args.size} px · {len(images)} images",
            f"`{report['command']}`",
            [
                "worker batch size",
                "images/s",
                "p50 job latency ms",
                "p99 job latency ms",
                "worker peak RSS MB",
                "images per model batch",
                "job results per commit",
            ],
            rows,
        )
    return 0
