"""Keys and tenants, idempotency, rate limits and hostile requests at the API (SQLite, local
store, a recording queue)."""

from __future__ import annotations

import io
import json
import time

import pytest
from PIL import Image

from tests.test_api import RecordingQueue, client_for, post_image
from unmask.api import create_app
from unmask.core.settings import Settings
from unmask.migrations import upgrade


@pytest.fixture
def settings(tmp_path) -> Settings:
    s = Settings(data_dir=tmp_path, max_upload_bytes=200_000, secret_key="test-secret", max_pixels=1_000_000)
    upgrade(s.resolved_database_url)
    return s


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def app(settings, queue):
    return create_app(settings, queue=queue)


def test_requests_without_a_valid_key_are_refused(app, face_bytes):
    anonymous = app.test_client()
    for response in (anonymous.get("/v1/jobs"), post_image(anonymous, face_bytes)):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    anonymous.environ_base["HTTP_AUTHORIZATION"] = "Bearer um_not-a-real-key"
    assert anonymous.get("/v1/jobs").status_code == 401
    assert anonymous.get("/healthz").status_code == 200  # probes stay open


def test_a_revoked_key_stops_working(app):
    keys = app.extensions["unmask"].keys
    info, secret = keys.create(tenant="acme")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    assert client.get("/v1/jobs").status_code == 200
    keys.revoke(key=info.prefix)
    assert client.get("/v1/jobs").status_code == 401


def test_a_key_revoked_by_another_process_stops_working_once_the_cache_time_is_over(app):
    from unmask.core.keys import KeyService

    keys = app.extensions["unmask"].keys
    keys.cache_seconds = 0.5
    elsewhere = KeyService(sessions=keys.sessions)  # e.g. `unmask keys revoke` on another host
    info, secret = elsewhere.create(tenant="acme")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    assert client.get("/v1/jobs").status_code == 200
    elsewhere.revoke(key=info.prefix)
    time.sleep(0.6)
    assert client.get("/v1/jobs").status_code == 401


def test_tenants_see_only_their_own_jobs(app, face_bytes):
    acme, other = client_for(app, "acme"), client_for(app, "other")
    job = post_image(acme, face_bytes).get_json()
    assert acme.get(f"/v1/jobs/{job['id']}").status_code == 200
    assert other.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert other.get("/v1/jobs").get_json()["jobs"] == []
    assert [j["id"] for j in acme.get("/v1/jobs").get_json()["jobs"]] == [job["id"]]


def test_same_idempotency_key_and_body_replays_the_first_answer(app, queue, face_bytes):
    client = client_for(app, "acme")
    first = post_image(client, face_bytes, metadata='{"a": 1}', headers={"Idempotency-Key": "k-1"})
    again = post_image(client, face_bytes, metadata='{"a": 1}', headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json() and len(queue.ids) == 1
    other_body = post_image(client, face_bytes, metadata='{"a": 2}', headers={"Idempotency-Key": "k-1"})
    assert other_body.status_code == 409
    assert other_body.get_json()["error"]["code"] == "idempotency_key_reused"
    # Keys are per tenant: another tenant's identical key is its own.
    elsewhere = post_image(client_for(app, "other"), face_bytes, headers={"Idempotency-Key": "k-1"})
    assert elsewhere.status_code == 202 and elsewhere.get_json()["id"] != first.get_json()["id"]


def test_a_failed_request_does_not_use_up_its_idempotency_key(app, queue, face_bytes):
    client = client_for(app, "acme")
    assert post_image(client, b"not an image", headers={"Idempotency-Key": "k-2"}).status_code == 422
    queue.down = True
    assert post_image(client, face_bytes, headers={"Idempotency-Key": "k-3"}).status_code == 503
    queue.down = False
    assert post_image(client, face_bytes, headers={"Idempotency-Key": "k-3"}).status_code == 202


def test_rate_limit_answers_429_with_retry_after(tmp_path, queue):
    settings = Settings(data_dir=tmp_path, secret_key="s", rate_limit="3/minute")
    upgrade(settings.resolved_database_url)
    client = client_for(create_app(settings, queue=queue), "acme")
    codes = [client.get("/v1/jobs").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/v1/jobs")
    assert limited.get_json()["error"]["code"] == "too_many_requests"
    assert int(limited.headers["Retry-After"]) > 0


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(app):
    client = client_for(app, "acme")
    response = post_image(client, png(2000, 1000), name="wide.png")  # 2 M pixels, limit 1 M
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "image_too_large"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            '{"source": {"s3": {"bucket": "b", "key": "k"}}, "metadata": ' + "[" * 5000 + "]" * 5000 + "}",
            "invalid_json",
        ),
        ("[" * 5000 + "]" * 5000, "invalid_json"),
        (json.dumps({"source": {"s3": {"bucket": "b" * 300, "key": "k"}}}), "invalid_source"),
        (json.dumps({"source": {"s3": {"bucket": "UPPER", "key": "k"}}}), "invalid_source"),
        (json.dumps({"source": {"s3": {"bucket": "ok-bucket", "key": "a\\u0000b"}}}), "invalid_source"),
        (json.dumps({"source": {"s3": {"bucket": "ok-bucket", "key": "k" * 1025}}}), "invalid_source"),
    ],
)
def test_hostile_json_is_a_400_with_a_code(tmp_path, queue, body, code):
    settings = Settings(data_dir=tmp_path, secret_key="s")
    upgrade(settings.resolved_database_url)
    client = client_for(create_app(settings, queue=queue), "acme")
    response = client.post("/v1/jobs", data=body, content_type="application/json")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] in (code, "s3_not_configured")
    assert queue.ids == []


def test_hostile_multipart_is_a_400_with_a_code(app, face_bytes):
    client = client_for(app, "acme")
    unnamed = client.post(
        "/v1/jobs", data={"": (io.BytesIO(face_bytes), "a.jpg")}, content_type="multipart/form-data"
    )
    assert unnamed.status_code == 400 and unnamed.get_json()["error"]["code"] == "unknown_field"
    deep = post_image(client, face_bytes, metadata="[" * 5000 + "]" * 5000)
    assert deep.status_code == 400 and deep.get_json()["error"]["code"] == "invalid_metadata"
    huge = post_image(client, face_bytes, metadata=json.dumps({"x": "y" * 20_000}))
    assert huge.status_code == 400 and huge.get_json()["error"]["code"] == "invalid_metadata"


def test_batches_honour_idempotency_keys_and_the_tenants_size_limit(app, face_bytes):
    client = client_for(app, "acme")
    files = {"image": [(io.BytesIO(face_bytes), "a.jpg"), (io.BytesIO(face_bytes), "b.jpg")]}
    first = client.post("/v1/batches", data=files, headers={"Idempotency-Key": "b-1"})
    files = {"image": [(io.BytesIO(face_bytes), "a.jpg"), (io.BytesIO(face_bytes), "b.jpg")]}
    again = client.post("/v1/batches", data=files, headers={"Idempotency-Key": "b-1"})
    assert first.status_code == again.status_code == 202 and again.get_json()["id"] == first.get_json()["id"]
    other = client.post(
        "/v1/batches", data={"image": [(io.BytesIO(face_bytes), "c.jpg")]}, headers={"Idempotency-Key": "b-1"}
    )
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "idempotency_key_reused"
    app.extensions["unmask"].jobs.tenants.set_max_batch_items(tenant="acme", limit=1)
    too_big = client.post(
        "/v1/batches", data={"image": [(io.BytesIO(face_bytes), f"{i}.jpg") for i in range(2)]}
    )
    assert too_big.status_code == 400 and too_big.get_json()["error"]["code"] == "batch_too_large"
