"""Prometheus metrics, one definition each. The API serves its own registry at /metrics
(with job and queue gauges read at scrape time); a worker serves its registry on
UNMASK_WORKER_METRICS_PORT."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from unmask.storage.models import Job

STAGE_SECONDS = Histogram(
    "unmask_stage_seconds",
    "Time spent per stage of one job",
    ["stage"],  # fetch, decode, analyse, encode, store, record
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
JOB_OUTCOMES = Counter("unmask_job_outcomes_total", "Jobs finished by a worker", ["status", "code"])
RECONCILER_ACTIONS = Counter("unmask_reconciler_actions_total", "What the reconciler did", ["action"])
HTTP_SECONDS = Histogram(
    "unmask_http_request_seconds", "API request latency", ["method", "endpoint", "status"]
)


class StateCollector(Collector):
    """Jobs by status and the broker's queue depth, read when Prometheus scrapes."""

    def __init__(self, sessions: sessionmaker[Session], queue_depth: Callable[[], int]) -> None:
        self.sessions = sessions
        self.queue_depth = queue_depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("unmask_jobs", "Jobs by status", labels=["status"])
        with self.sessions() as session:
            counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        for status in ("queued", "running", "succeeded", "failed"):
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily(
            "unmask_queue_depth", "Job ids waiting in the broker", value=self.queue_depth()
        )
