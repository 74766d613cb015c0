"""Image in -> every face scored and explained -> overlays in S3 -> results in Postgres -> poll."""

from __future__ import annotations

import io
import uuid

import pytest
import requests
from PIL import Image
from sqlalchemy import func, select

pytestmark = pytest.mark.integration


def fetch_image(url: str) -> Image.Image:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("image/")
    return Image.open(io.BytesIO(response.content))


def test_one_face_is_scored_explained_and_stored(stack, face_bytes):
    created = stack.submit(face_bytes, "portrait.jpg", metadata='{"ticket": 42}')
    assert created["status"] == "queued"
    job = stack.wait(created["id"])
    assert job["status"] == "succeeded", job
    assert job["metadata"] == {"ticket": 42}
    result = job["result"]
    assert len(result["faces"]) == 1
    face = result["faces"][0]
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= 288 and 0 <= y1 < y2 <= 288
    assert face["detection_probability"] > 0.9
    assert 0.0 <= face["fake_probability"] <= 1.0
    assert face["verdict"] in ("fake", "real", "uncertain")
    assert result["fake_probability"] == face["fake_probability"]
    assert result["verdict"] == face["verdict"]
    assert result["model"]["name"] == "reference-irv1"
    assert len(result["model"]["weights_sha256"]) == 64
    assert result["model"]["thresholds"] == {"real": 0.5, "fake": 0.5}
    whole = fetch_image(result["overlay_url"])
    assert whole.size == (288, 288)
    assert fetch_image(face["overlay_url"]).size == (160, 160)


def test_overlay_url_is_signed(stack, face_bytes):
    job = stack.wait(stack.submit(face_bytes)["id"])
    url = job["result"]["overlay_url"]
    assert "X-Amz-Signature=" in url
    unsigned = url.split("?")[0]
    assert requests.get(unsigned, timeout=10).status_code == 403


def test_every_face_in_a_group_photo(stack, group_bytes):
    job = stack.wait(stack.submit(group_bytes, "group.jpg")["id"])
    assert job["status"] == "succeeded", job
    faces = job["result"]["faces"]
    scored = [f for f in faces if f["fake_probability"] is not None]
    assert len(scored) == 3
    lefts = sorted(f["box"][0] for f in scored)
    assert lefts[1] - lefts[0] > 200 and lefts[2] - lefts[1] > 200  # three distinct people
    assert job["result"]["fake_probability"] == max(f["fake_probability"] for f in scored)
    assert all(f["overlay_url"] for f in scored)


def test_image_without_a_face_succeeds_with_no_face(stack, no_face_bytes):
    job = stack.wait(stack.submit(no_face_bytes, "hills.png")["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["verdict"] == "no_face"
    assert job["result"]["faces"] == []
    assert job["result"]["fake_probability"] is None


def test_s3_referenced_image(stack, face_bytes):
    stack.s3.put_object(Bucket="customer-uploads", Key="incoming/a b/face.jpg", Body=face_bytes)
    response = stack.http.post(
        f"{stack.url}/v1/jobs",
        json={
            "source": {"s3": {"bucket": "customer-uploads", "key": "incoming/a b/face.jpg"}},
            "metadata": {"from": "s3"},
        },
        timeout=10,
    )
    assert response.status_code == 202, response.text
    assert response.headers["Location"].endswith(response.json()["id"])
    job = stack.wait(response.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["source"]["s3"] == {"bucket": "customer-uploads", "key": "incoming/a b/face.jpg"}
    assert len(job["result"]["faces"]) == 1


def test_missing_s3_object_fails_with_a_code(stack):
    response = stack.http.post(
        f"{stack.url}/v1/jobs",
        json={"source": {"s3": {"bucket": "customer-uploads", "key": "incoming/nope.jpg"}}},
        timeout=10,
    )
    job = stack.wait(response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "object_not_found"


def test_corrupt_file_fails_and_worker_lives_on(stack, corrupt_bytes, face_bytes):
    job = stack.wait(stack.submit(corrupt_bytes, "broken.jpg")["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "not_an_image"
    assert "result" not in job
    assert stack.worker.poll() is None
    after = stack.wait(stack.submit(face_bytes)["id"])
    assert after["status"] == "succeeded"


def without_urls(faces: list[dict]) -> list[dict]:
    return [{k: v for k, v in f.items() if k != "overlay_url"} for f in faces]


def test_redelivered_job_does_not_duplicate_faces(stack, group_bytes):
    from unmask.api.queue import celery_queue
    from unmask.storage.db import make_engine
    from unmask.storage.models import Face

    job = stack.wait(stack.submit(group_bytes)["id"])
    queue = celery_queue(stack.settings)
    queue.enqueue_detect(job["id"])  # the broker delivers the same id twice more
    queue.enqueue_detect(job["id"])
    # One solo worker takes the queue in order: once a later job is done, so are the repeats.
    assert stack.wait(stack.submit(group_bytes)["id"])["status"] == "succeeded"
    with make_engine(stack.settings.resolved_database_url).connect() as conn:
        count = conn.scalar(select(func.count()).select_from(Face).where(Face.job_id == uuid.UUID(job["id"])))
    again = stack.http.get(f"{stack.url}/v1/jobs/{job['id']}", timeout=10).json()
    assert count == len(job["result"]["faces"])
    assert len([f for f in job["result"]["faces"] if f["fake_probability"] is not None]) == 3
    assert again["attempts"] == 1
    assert without_urls(again["result"]["faces"]) == without_urls(job["result"]["faces"])


def test_list_jobs_newest_first_with_cursor(stack, face_bytes):
    ids = [stack.submit(face_bytes)["id"] for _ in range(3)]
    page = stack.http.get(f"{stack.url}/v1/jobs", params={"limit": 2}, timeout=10).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    rest = stack.http.get(
        f"{stack.url}/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}, timeout=10
    ).json()
    assert rest["jobs"][0]["id"] == ids[0]
    for job_id in ids:
        stack.wait(job_id)
    done = stack.http.get(
        f"{stack.url}/v1/jobs", params={"status": "succeeded", "limit": 200}, timeout=10
    ).json()
    assert all(j["status"] == "succeeded" for j in done["jobs"])
    assert set(ids) <= {j["id"] for j in done["jobs"]}


def test_ready_when_database_broker_and_store_answer(stack):
    response = stack.http.get(f"{stack.url}/readyz", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "store": "ok"}


def test_s3_locations_outside_the_tenants_allowance_are_refused_alike(stack, face_bytes):
    """Refused at submit, before any request to S3, with one answer whether or not the object exists."""
    stack.s3.put_object(Bucket="customer-uploads", Key="private/face.jpg", Body=face_bytes)
    answers = []
    for bucket, key in (
        ("customer-uploads", "private/face.jpg"),  # exists, outside incoming/
        ("customer-uploads", "private/missing.jpg"),
        ("unmask-test", "uploads/someone-else/x/y/original.jpg"),  # another tenant's upload
    ):
        response = stack.http.post(
            f"{stack.url}/v1/jobs", json={"source": {"s3": {"bucket": bucket, "key": key}}}, timeout=10
        )
        answers.append((response.status_code, response.json()["error"]["code"]))
    assert answers == [(403, "source_not_allowed")] * 3


def test_delete_removes_the_job_and_every_object(stack, face_bytes):
    job = stack.wait(stack.submit(face_bytes)["id"])
    assert job["status"] == "succeeded"

    def objects() -> list[str]:
        keys = []
        for prefix in (f"uploads/e2e/{job['id']}/", f"overlays/e2e/{job['id']}/"):
            listed = stack.s3.list_objects_v2(Bucket="unmask-test", Prefix=prefix)
            keys += [o["Key"] for o in listed.get("Contents", [])]
        return keys

    assert len(objects()) == 3  # the upload, the whole-image overlay, the face overlay
    intruder = requests.Session()
    intruder.headers["Authorization"] = f"Bearer {stack.other_key}"
    assert intruder.delete(f"{stack.url}/v1/jobs/{job['id']}", timeout=10).status_code == 404
    assert stack.http.delete(f"{stack.url}/v1/jobs/{job['id']}", timeout=10).status_code == 204
    assert stack.http.get(f"{stack.url}/v1/jobs/{job['id']}", timeout=10).status_code == 404
    assert objects() == []
