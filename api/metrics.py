"""/metrics for Prometheus: request latency, and jobs by status and queue depth at scrape time."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from unmask.core.metrics import HTTP_SECONDS, StateCollector
from unmask.core.wiring import Services


def install_metrics(app: Flask, services: Services) -> None:
    state = CollectorRegistry()  # collected at scrape time only
    state.register(StateCollector(services.sessions, services.queue.depth))

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        if "started" in g and request.endpoint != "metrics":
            endpoint = request.endpoint or "unknown"
            HTTP_SECONDS.labels(request.method, endpoint, str(response.status_code)).observe(
                time.perf_counter() - g.started
            )
        return response

    @app.get("/metrics", endpoint="metrics", doc_ui=False)
    def metrics() -> Response:
        body = generate_latest(REGISTRY) + generate_latest(state)
        return Response(body, mimetype=CONTENT_TYPE_LATEST)
