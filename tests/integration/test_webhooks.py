"""Signed webhooks on the whole stack: a local receiver verifies every delivery with the
`standardwebhooks` library; failures are retried under the same webhook-id."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests import services
from unmask.core.keys import KeyService
from unmask.core.wiring import make_sessions

pytestmark = pytest.mark.integration


class Receiver:
    """A webhook receiver on loopback that answers with the statuses it is given, then 204."""

    def __init__(self, port: int, statuses: list[int] | None = None) -> None:
        self.port, self.statuses, self.calls = port, list(statuses or []), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def verified(self, secret: str) -> list[dict]:
        """Every call, checked with the standardwebhooks library (raises on a bad signature)."""
        hook = Webhook(secret)
        return [hook.verify(body, {k.lower(): v for k, v in headers.items()}) for headers, body in self.calls]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiver(port: int | None = None, statuses: list[int] | None = None) -> Iterator[Receiver]:
    r = Receiver(port or services.free_port(), statuses)
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def tenant(stack, request) -> requests.Session:
    """A tenant of its own per test, so endpoints do not see other tests' jobs."""
    name = "hooks-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[-40:].strip("-")
    _, secret = KeyService(sessions=make_sessions(stack.settings)).create(tenant=name)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {secret}"
    return http


def submit(stack, http, data: bytes, **form: str) -> dict:
    response = http.post(f"{stack.url}/v1/jobs", files={"image": ("f.jpg", data)}, data=form, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_registered_endpoint_gets_a_signed_job_event(stack, tenant, face_bytes):
    with receiver() as hook:
        endpoint = tenant.post(
            f"{stack.url}/v1/webhooks", json={"url": hook.url, "events": ["job.succeeded"]}
        )
        assert endpoint.status_code == 201, endpoint.text
        secret = endpoint.json()["secret"]
        assert secret.startswith("whsec_")
        assert "secret" not in tenant.get(f"{stack.url}/v1/webhooks").json()["endpoints"][0] or (
            tenant.get(f"{stack.url}/v1/webhooks").json()["endpoints"][0]["secret"] is None
        )
        job = submit(stack, tenant, face_bytes)
        wait_for(lambda: len(hook.calls) == 1)
        (event,) = hook.verified(secret)
        assert event["type"] == "job.succeeded" and event["data"]["id"] == job["id"]
        assert event["data"]["status"] == "succeeded" and event["data"]["result"]["faces"]
        log = tenant.get(f"{stack.url}/v1/webhooks/deliveries").json()["deliveries"]
        assert log[0]["status"] == "delivered" and log[0]["log"][0]["status_code"] == 204


def test_a_failing_receiver_gets_the_event_later_under_the_same_id(stack, tenant, face_bytes):
    with receiver(statuses=[500, 503]) as hook:
        secret = tenant.post(f"{stack.url}/v1/webhooks", json={"url": hook.url}).json()["secret"]
        submit(stack, tenant, face_bytes)
        wait_for(lambda: len(hook.calls) == 3)
        ids = {headers["webhook-id"] for headers, _ in hook.calls}
        assert len(ids) == 1 and len(hook.verified(secret)) == 3
        wait_for(
            lambda: (
                tenant.get(f"{stack.url}/v1/webhooks/deliveries").json()["deliveries"][0]["status"]
                == "delivered"
            )
        )
        attempts = tenant.get(f"{stack.url}/v1/webhooks/deliveries").json()["deliveries"][0]["log"]
        assert [a["status_code"] for a in attempts] == [500, 503, 204]


def test_a_receiver_down_longer_than_a_backoff_step_gets_every_event(stack, tenant, face_bytes):
    port = services.free_port()
    secret = tenant.post(f"{stack.url}/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/hook"}).json()[
        "secret"
    ]
    jobs = [submit(stack, tenant, face_bytes)["id"] for _ in range(2)]
    time.sleep(4)  # several backoff steps of 0.5 s, 1 s, 2 s: every attempt refused
    with receiver(port) as hook:
        wait_for(lambda: len({json.loads(body)["data"]["id"] for _, body in hook.calls}) == 2, 90)
        assert {e["data"]["id"] for e in hook.verified(secret)} == set(jobs)


def test_a_batch_calls_its_webhook_url_once_when_it_completes(stack, tenant, face_bytes):
    assert (
        tenant.post(
            f"{stack.url}/v1/batches",
            files=[("image", ("a.jpg", face_bytes))],
            data={"webhook_url": "http://127.0.0.1:9/x"},
        ).json()["error"]["code"]
        == "webhook_secret_missing"
    )
    secret = tenant.post(f"{stack.url}/v1/webhooks/secret").json()["secret"]
    with receiver() as hook:
        files = [("image", (f"{i}.jpg", face_bytes)) for i in range(3)]
        batch = tenant.post(f"{stack.url}/v1/batches", files=files, data={"webhook_url": hook.url}).json()
        wait_for(lambda: len(hook.calls) >= 1)
        time.sleep(1)
        (event,) = hook.verified(secret)
        assert event["type"] == "batch.completed" and event["data"]["id"] == batch["id"]
        assert event["data"]["counts"]["by_status"] == {"succeeded": 3}


def test_410_disables_the_endpoint_and_redelivery_resends(stack, tenant, face_bytes):
    with receiver(statuses=[410]) as hook:
        endpoint = tenant.post(f"{stack.url}/v1/webhooks", json={"url": hook.url}).json()
        submit(stack, tenant, face_bytes)
        wait_for(
            lambda: tenant.get(f"{stack.url}/v1/webhooks").json()["endpoints"][0]["disabled_at"] is not None
        )
        delivery = tenant.get(f"{stack.url}/v1/webhooks/deliveries").json()["deliveries"][0]
        assert delivery["status"] == "failed" and len(hook.calls) == 1
        tenant.post(f"{stack.url}/v1/webhooks/{endpoint['id']}/rotate")
        assert tenant.delete(f"{stack.url}/v1/webhooks/{endpoint['id']}").status_code == 204


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://10.1.2.3/hook", "webhook_url_not_allowed"),
        ("http://169.254.169.254/latest/meta-data", "webhook_url_not_allowed"),
        ("http://[::1]:8080/hook", "webhook_url_not_allowed"),
        ("http://192.168.0.10/hook", "webhook_url_not_allowed"),
        ("ftp://example.com/hook", "invalid_webhook_url"),
        ("http://no-such-host.invalid/hook", "invalid_webhook_url"),
    ],
)
def test_private_and_unreachable_urls_are_refused(stack, tenant, url, code):
    response = tenant.post(f"{stack.url}/v1/webhooks", json={"url": url})
    assert response.status_code == 400 and response.json()["error"]["code"] == code
