"""Batches on the whole stack: an S3 prefix, a manifest, many uploads; exports, cancel, tenancy."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
import requests
from PIL import Image

from tests.conftest import LABELLED

pytestmark = pytest.mark.integration

BUCKET = "customer-uploads"


def small_faces() -> list[bytes]:
    """The labelled fixtures, shrunk so a batch of fifty runs quickly on a CPU."""
    out = []
    for path in sorted(LABELLED.rglob("*.jpg")):
        buf = io.BytesIO()
        Image.open(path).convert("RGB").resize((128, 128)).save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def wait_batch(stack, batch_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = stack.http.get(f"{stack.url}/v1/batches/{batch_id}", timeout=10).json()
        if batch["status"] in ("completed", "cancelled"):
            return batch
        time.sleep(0.5)
    raise TimeoutError(f"batch {batch_id}: {batch}")


def test_a_prefix_of_fifty_completes_and_exports_every_item_once(stack):
    faces = small_faces()
    keys = [f"incoming/prefix-50/{i:03d}.jpg" for i in range(50)]
    for i, key in enumerate(keys):
        stack.s3.put_object(Bucket=BUCKET, Key=key, Body=faces[i % len(faces)])
    created = stack.http.post(
        f"{stack.url}/v1/batches",
        json={
            "source": {"s3": {"bucket": BUCKET, "prefix": "incoming/prefix-50/"}},
            "metadata": {"queue": "moderation"},
            "output": {"bucket": BUCKET, "key": "incoming/results/prefix-50.jsonl"},
        },
        timeout=30,
    )
    assert created.status_code == 202, created.text
    assert created.json()["status"] == "pending"  # listed by a worker, not in the request
    batch = wait_batch(stack, created.json()["id"])
    counts = batch["counts"]
    assert batch["status"] == "completed" and counts["total"] == 50 and counts["progress"] == 1.0
    assert sum(counts["by_status"].values()) == 50 and counts["by_status"].get("succeeded") == 50
    assert sum(counts["by_verdict"].values()) == 50
    export = stack.http.get(f"{stack.url}/v1/batches/{batch['id']}/results.jsonl", timeout=30)
    rows = [json.loads(line) for line in export.text.splitlines()]
    assert sorted(r["source"]["s3"]["key"] for r in rows) == keys  # every item, exactly once
    assert [r["batch_index"] for r in rows] == list(range(50))
    verdicts = {}
    for row in rows:
        verdicts[row["result"]["verdict"]] = verdicts.get(row["result"]["verdict"], 0) + 1
    assert verdicts == counts["by_verdict"]
    for _ in range(60):  # the output is written by a task after completion
        listed = stack.s3.list_objects_v2(Bucket=BUCKET, Prefix="incoming/results/prefix-50.jsonl")
        if listed.get("KeyCount"):
            break
        time.sleep(0.5)
    written = stack.s3.get_object(Bucket=BUCKET, Key="incoming/results/prefix-50.jsonl")["Body"].read()
    assert len(written.decode().splitlines()) == 50
    page = stack.http.get(
        f"{stack.url}/v1/batches/{batch['id']}/jobs", params={"limit": 20}, timeout=10
    ).json()
    assert len(page["jobs"]) == 20 and page["next_cursor"]


def test_many_uploads_in_one_request_and_a_csv_export(stack):
    faces = small_faces()[:3]
    files = [("image", (f"face-{i}.jpg", data, "image/jpeg")) for i, data in enumerate(faces)]
    created = stack.http.post(f"{stack.url}/v1/batches", files=files, timeout=30)
    assert created.status_code == 202, created.text
    batch = wait_batch(stack, created.json()["id"])
    assert batch["counts"]["by_status"] == {"succeeded": 3}
    table = list(
        csv.reader(io.StringIO(stack.http.get(f"{stack.url}/v1/batches/{batch['id']}/results.csv").text))
    )
    assert table[0][:3] == ["index", "job_id", "status"] and len(table) == 4
    assert [row[3] for row in table[1:]] == ["face-0.jpg", "face-1.jpg", "face-2.jpg"]


def test_a_manifest_batch_fails_only_the_items_it_may_not_read(stack):
    face = small_faces()[0]
    stack.s3.put_object(Bucket=BUCKET, Key="incoming/manifest/a.jpg", Body=face)
    lines = [
        {"bucket": BUCKET, "key": "incoming/manifest/a.jpg", "metadata": {"post": 1}},
        {"bucket": BUCKET, "key": "private/elsewhere.jpg"},
        {"bucket": BUCKET, "key": "incoming/manifest/missing.jpg"},
    ]
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    stack.s3.put_object(Bucket=BUCKET, Key="incoming/manifest/list.jsonl", Body=body.encode())
    created = stack.http.post(
        f"{stack.url}/v1/batches",
        json={"source": {"manifest": {"bucket": BUCKET, "key": "incoming/manifest/list.jsonl"}}},
        timeout=30,
    )
    batch = wait_batch(stack, created.json()["id"])
    assert batch["counts"]["by_status"] == {"succeeded": 1, "failed": 2}
    codes = {e["index"]: e["code"] for e in batch["first_errors"]}
    assert codes == {1: "source_not_allowed", 2: "object_not_found"}


def test_cancel_stops_queued_items(stack):
    face = small_faces()[0]
    for i in range(30):
        stack.s3.put_object(Bucket=BUCKET, Key=f"incoming/cancel/{i:02d}.jpg", Body=face)
    created = stack.http.post(
        f"{stack.url}/v1/batches", json={"source": {"s3": {"bucket": BUCKET, "prefix": "incoming/cancel/"}}}
    ).json()
    deadline = time.monotonic() + 60
    while stack.http.get(f"{stack.url}/v1/batches/{created['id']}").json()["status"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    cancelled = stack.http.post(f"{stack.url}/v1/batches/{created['id']}/cancel", timeout=10).json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["by_status"].get("cancelled", 0) > 0
    time.sleep(3)  # long enough for the worker to have run them, had they not been cancelled
    after = stack.http.get(f"{stack.url}/v1/batches/{created['id']}").json()
    assert after["counts"]["by_status"]["cancelled"] == cancelled["counts"]["by_status"]["cancelled"]


def test_a_queued_job_can_be_cancelled_and_another_tenant_sees_no_batch(stack):
    created = stack.http.post(
        f"{stack.url}/v1/batches", json={"items": [{"bucket": BUCKET, "key": "incoming/nope.jpg"}]}
    ).json()
    intruder = requests.Session()
    intruder.headers["Authorization"] = f"Bearer {stack.other_key}"
    assert intruder.get(f"{stack.url}/v1/batches/{created['id']}", timeout=10).status_code == 404
    assert intruder.get(f"{stack.url}/v1/batches", timeout=10).json()["batches"] == []
    finished = wait_batch(stack, created["id"])
    job = stack.http.get(f"{stack.url}/v1/batches/{created['id']}/jobs").json()["jobs"][0]
    refused = stack.http.post(f"{stack.url}/v1/jobs/{job['id']}/cancel", timeout=10)
    assert finished["status"] == "completed" and refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_cancellable"


def test_unmask_submit_pushes_a_folder_and_saves_every_verdict(stack, tmp_path):
    import os
    import subprocess
    import sys

    folder = tmp_path / "uploads"
    folder.mkdir()
    for i, data in enumerate(small_faces()[:3]):
        (folder / f"{i}.jpg").write_bytes(data)
    out = tmp_path / "verdicts.jsonl"
    key = stack.http.headers["Authorization"].removeprefix("Bearer ")
    result = subprocess.run(
        [sys.executable, "-m", "unmask", "submit", str(folder), "--url", stack.url, "--out", str(out)],
        env={**os.environ, "UNMASK_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["source"]["filename"] for r in rows) == ["0.jpg", "1.jpg", "2.jpg"]
    assert all(r["status"] == "succeeded" for r in rows) and "3 results" in result.stdout
    (batch_id,) = result.stdout.split("batches: ")[1].split()[:1]
    assert stack.http.get(f"{stack.url}/v1/batches/{batch_id}").json()["counts"]["total"] == 3
