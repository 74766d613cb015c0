"""An in-process batcher: many task threads hand it one item each; one thread runs them through
the model together.

A worker on the batch path runs Celery's thread pool with as many threads as the batch size.
Each thread takes one job as a task of its own (acks, retries, heartbeats and the reconciler work
as they do for one job at a time), fetches and decodes its image, then waits here while the
batcher's thread runs up to `max_size` images that arrived within `max_wait` seconds of each
other through one face detection and one scoring pass. The thread then draws and stores its own
overlays, so everything but the model runs concurrently.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from prometheus_client import Histogram

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

BATCH_ITEMS = Histogram(
    "unmask_worker_batch_items",
    "Items per group a batcher ran together (model-batcher: images; result-recorder: job results)",
    ["batcher"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


class Batcher(Generic[T, R]):
    """Collects items from any number of threads and calls `run(items)` on groups of them.
    `run` returns one result per item, in order; if it raises, every item of the group gets
    the exception."""

    def __init__(
        self,
        run: Callable[[list[T]], Sequence[R]],
        *,
        max_size: int,
        max_wait: float,
        name: str = "model-batcher",
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.run = run
        self.name = name
        self.max_size = max_size
        self.max_wait = max_wait
        self.pending: queue.Queue[tuple[T, Future[R]]] = queue.Queue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def submit(self, item: T) -> R:
        """Queue one item and wait for its result (or its exception)."""
        self._ensure_thread()
        future: Future[R] = Future()
        self.pending.put((item, future))
        return future.result()

    def _ensure_thread(self) -> None:
        # Started on first use, so a worker that forks builds it in the child.
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self.thread.start()

    def _collect(self) -> list[tuple[T, Future[R]]]:
        group = [self.pending.get()]
        deadline = time.monotonic() + self.max_wait
        while len(group) < self.max_size:
            try:
                group.append(self.pending.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return group

    def _loop(self) -> None:
        while True:
            group = self._collect()
            BATCH_ITEMS.labels(self.name).observe(len(group))
            try:
                results = self.run([item for item, _ in group])
                if len(results) != len(group):
                    raise RuntimeError(f"batch of {len(group)} items gave {len(results)} results")
            except BaseException as exc:  # every waiting thread learns what went wrong
                for _, future in group:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results):
                future.set_result(result)
