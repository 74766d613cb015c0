"""API behaviour with SQLite, the local object store and an in-memory queue (no worker)."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from PIL import Image

from unmask.api import create_app
from unmask.core.settings import Settings
from unmask.migrations import upgrade


class RecordingQueue:
    """Collects job ids instead of sending them to a broker."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.down = False

    def enqueue_detect(self, job_id: uuid.UUID) -> None:
        if self.down:
            raise ConnectionError("broker down")
        self.ids.append(str(job_id))

    def ping(self) -> None:
        if self.down:
            raise ConnectionError("broker down")

    def depth(self) -> int:
        return len(self.ids)

    def enqueue_expand(self, batch_id: uuid.UUID) -> None:
        self.ids.append(f"expand:{batch_id}")

    def enqueue_export(self, batch_id: uuid.UUID) -> None:
        self.ids.append(f"export:{batch_id}")


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def settings(tmp_path) -> Settings:
    s = Settings(data_dir=tmp_path, max_upload_bytes=200_000, secret_key="test-secret")
    upgrade(s.resolved_database_url)
    return s


@pytest.fixture
def app(settings, queue):
    return create_app(settings, queue=queue)


def client_for(app, tenant: str):
    """A test client that sends a new API key of this tenant."""
    _, secret = app.extensions["unmask"].keys.create(tenant=tenant)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


@pytest.fixture
def client(app):
    return client_for(app, "acme")


def post_image(client, data: bytes, name: str = "x.jpg", headers: dict | None = None, **form):
    return client.post(
        "/v1/jobs",
        data={"image": (io.BytesIO(data), name), **form},
        content_type="multipart/form-data",
        headers=headers or {},
    )


def test_upload_is_queued_with_location(client, queue, face_bytes, settings):
    response = post_image(client, face_bytes, metadata=json.dumps({"ref": "abc"}))
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued" and body["metadata"] == {"ref": "abc"}
    assert response.headers["Location"] == f"/v1/jobs/{body['id']}"
    assert queue.ids == [body["id"]]  # the broker carries the id, nothing else
    stored = list((settings.objects_dir / "uploads" / "acme" / body["id"]).rglob("original.jpg"))
    assert len(stored) == 1 and stored[0].read_bytes() == face_bytes
    assert client.get(response.headers["Location"]).get_json()["status"] == "queued"


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 422, "empty_file"),
        (b"hello, not an image", 422, "not_an_image"),
        (b"\xff" * 300_000, 413, "payload_too_large"),
    ],
)
def test_bad_uploads_are_rejected_with_json_errors(client, queue, data, status, code):
    response = post_image(client, data)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert response.get_json()["error"]["message"]
    assert queue.ids == []


def test_unknown_and_missing_fields(client, face_bytes):
    response = post_image(client, face_bytes, colour="red")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "unknown_field"
    assert "colour" in response.get_json()["error"]["message"]
    response = client.post("/v1/jobs", data={"metadata": "{}"}, content_type="multipart/form-data")
    assert response.get_json()["error"]["code"] == "missing_image"
    response = post_image(client, face_bytes, metadata="[1, 2]")
    assert response.get_json()["error"]["code"] == "invalid_metadata"


@pytest.mark.parametrize(
    "body",
    [
        {"source": {"s3": {"bucket": "b"}}},
        {"source": {"url": "http://example.com/x.jpg"}},
        {"source": {"s3": {"bucket": "b", "key": "k", "region": "x"}}},
        {"source": {"s3": {"bucket": "b", "key": "k"}}, "priority": 1},
        [1, 2, 3],
    ],
)
def test_bad_json_sources(client, queue, body):
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] in ("invalid_source", "unknown_field", "invalid_json")
    assert queue.ids == []


def test_s3_source_needs_the_s3_store(client, queue):
    response = client.post("/v1/jobs", json={"source": {"s3": {"bucket": "b", "key": "p/q.jpg"}}})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "s3_not_configured"
    assert queue.ids == []


def test_plain_text_body_is_unsupported(client):
    response = client.post("/v1/jobs", data="hi", content_type="text/plain")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "unsupported_media_type"


def test_unknown_job_is_404(client):
    for job_id in (uuid.uuid4(), "not-a-uuid"):
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


def test_broker_down_fails_the_job_and_says_so(client, queue, face_bytes):
    queue.down = True
    response = post_image(client, face_bytes)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "queue_unavailable"
    jobs = client.get("/v1/jobs").get_json()["jobs"]
    assert [(j["status"], j["error"]["code"]) for j in jobs] == [("failed", "queue_unavailable")]


def test_listing_pages_newest_first(client, face_bytes):
    ids = [post_image(client, face_bytes).get_json()["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/jobs", query_string=params).get_json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert client.get("/v1/jobs?status=succeeded").get_json() == {"jobs": [], "next_cursor": None}
    for bad in ("status=done", "limit=0", "limit=x", "cursor=!!", "sort=asc"):
        response = client.get(f"/v1/jobs?{bad}")
        assert response.status_code == 400, bad


def test_health_and_openapi(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["database"] == "ok"
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/healthz", "/readyz", "/openapi.json"} <= set(spec["paths"])
    assert {"post", "get"} <= set(spec["paths"]["/v1/jobs"])


def test_local_object_urls_are_signed_and_expire(client, settings):
    from unmask.core.wiring import make_store

    store = make_store(settings)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buf, format="JPEG")
    store.put("overlays/x/tok/image.jpg", buf.getvalue(), "image/jpeg")
    url = store.url("overlays/x/tok/image.jpg", 60)
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert client.get(url.replace("signature=", "signature=0")).status_code == 404
    expired = url.split("?")[0] + "?expires=1&signature=" + store.signature("overlays/x/tok/image.jpg", 1)
    assert client.get(expired).status_code == 404
    assert client.get("/v1/objects/../../etc/passwd?expires=9999999999&signature=x").status_code == 404


def test_a_wrong_method_answers_405_with_allow(client):
    response = client.delete("/v1/jobs")
    assert response.status_code == 405
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_query_parameters_are_checked_against_the_schema(client):
    assert client.get("/v1/jobs?colour=red").get_json()["error"]["code"] == "unknown_field"
    for query, code in (
        ("limit=0", "invalid_limit"),
        ("limit=x", "invalid_limit"),
        ("status=done", "invalid_status"),
    ):
        response = client.get(f"/v1/jobs?{query}")
        assert response.status_code == 400 and response.get_json()["error"]["code"] == code


def test_the_openapi_document_describes_both_ways_to_submit(client):
    from openapi_spec_validator import validate

    spec = client.get("/openapi.json").get_json()
    validate(spec)  # a valid OpenAPI 3.1 document
    body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    job = spec["components"]["schemas"]["JobRead"]["properties"]
    assert {"id", "status", "result", "error", "attempts", "source", "metadata"} <= set(job)


def test_the_api_loads_no_torch_and_none_of_the_worker(tmp_path):
    """`api` reaches core only; building the app must not pull in the model stack."""
    import subprocess
    import sys

    code = (
        "import sys; from unmask.api import create_app; from unmask.core.settings import Settings;"
        f"create_app(Settings(data_dir={str(tmp_path)!r}));"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'facenet_pytorch')"
        " or m.startswith(('unmask.worker', 'unmask.detector', 'unmask.training'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_metrics_count_jobs_by_status_and_the_queue(client, app, face_bytes):
    post_image(client, face_bytes)
    post_image(client, face_bytes)
    body = app.test_client().get("/metrics").get_data(as_text=True)  # no key needed to scrape
    assert 'unmask_jobs{status="queued"} 2.0' in body
    assert "unmask_queue_depth 2.0" in body
    assert 'unmask_http_request_seconds_count{endpoint="jobs.create_job",method="POST",status="202"}' in body


def test_json_logs_carry_the_job_and_tenant(capsys):
    import logging

    from unmask.core.logs import configure_logging, log_context

    configure_logging("json")
    try:
        with log_context(job_id="j-1", tenant="acme"):
            logging.getLogger("unmask.test").info("scored")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        configure_logging("text")
    assert line["message"] == "scored" and line["job_id"] == "j-1" and line["tenant"] == "acme"
    assert line["level"] == "INFO" and "time" in line
