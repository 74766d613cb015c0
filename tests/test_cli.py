"""The `unmask` command as a user runs it: refusing to start without weights, `up`, `scan`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.services import free_port, wait_for_port


def run_unmask(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "unmask", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_services_refuse_to_start_without_weights(tmp_path):
    env = {"UNMASK_DATA_DIR": str(tmp_path), "UNMASK_WEIGHTS": str(tmp_path / "missing.pt")}
    for command in (["worker"], ["up", "--port", str(free_port())]):
        result = run_unmask(*command, env=env, timeout=60)
        assert result.returncode == 2, result.stderr
        assert f"classifier weights not found: {tmp_path / 'missing.pt'}" in result.stderr


def test_up_serves_a_job_end_to_end_and_stops_on_ctrl_c(tmp_path, test_weights, face_bytes):
    port = free_port()
    env = {
        **os.environ,
        "UNMASK_WEIGHTS": str(test_weights),
        "UNMASK_MODEL": "reference-irv1",
        "UNMASK_DEVICE": "cpu",
    }
    for key in [
        k
        for k in env
        if k.startswith("UNMASK_") and k not in ("UNMASK_WEIGHTS", "UNMASK_MODEL", "UNMASK_DEVICE")
    ]:
        env.pop(key)  # embedded defaults only
    proc = subprocess.Popen(
        [sys.executable, "-m", "unmask", "up", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, 90)
        url = f"http://127.0.0.1:{port}"
        key = (tmp_path / "data" / "api-key").read_text().strip()
        assert requests.get(f"{url}/v1/jobs", timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {key}"}
        created = requests.post(
            f"{url}/v1/jobs", files={"image": ("face.jpg", face_bytes)}, headers=auth, timeout=30
        )
        assert created.status_code == 202, created.text
        deadline = time.monotonic() + 120
        while (job := requests.get(url + created.headers["Location"], headers=auth, timeout=10).json())[
            "status"
        ] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["status"] == "succeeded", job
        face = job["result"]["faces"][0]
        assert face["box"] and 0 <= face["fake_probability"] <= 1
        overlay = requests.get(job["result"]["overlay_url"], timeout=10)
        assert overlay.status_code == 200 and overlay.headers["Content-Type"] == "image/jpeg"
        assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
        # The model lives in the worker child: the API's own process maps no torch library.
        assert "libtorch" not in Path(f"/proc/{proc.pid}/maps").read_text()
        status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        peak_kb = int(next(ln for ln in status if ln.startswith("VmHWM")).split()[1])
        assert peak_kb < 200 * 1024, f"API process peaked at {peak_kb // 1024} MB"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert f"Unmask is up at http://127.0.0.1:{port}" in out
    assert f"Authorization: Bearer {key}" in out  # how to use the key is printed
    assert proc.returncode in (0, 130)


def test_scan_writes_a_report_and_overlays(tmp_path, test_weights, face_bytes, no_face_bytes, corrupt_bytes):
    images = tmp_path / "images"
    images.mkdir()
    (images / "face.jpg").write_bytes(face_bytes)
    (images / "hills.png").write_bytes(no_face_bytes)
    (images / "broken.jpg").write_bytes(corrupt_bytes)
    out = tmp_path / "out"
    result = run_unmask(
        "scan", str(images), "--out", str(out), "--weights", str(test_weights), "--device", "cpu", env={}
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    rows = {os.path.basename(r["file"]): r for r in report["images"]}
    assert rows["hills.png"]["verdict"] == "no_face"
    assert rows["broken.jpg"]["error"]["code"] == "not_an_image"
    face = rows["face.jpg"]
    assert len(face["faces"]) == 1 and (out / face["overlay_url"]).exists()
    assert (out / face["faces"][0]["overlay_url"]).exists()
    assert report["model"]["name"] == "reference-irv1"
    # The same result shape the API returns for a job.
    from unmask.core.results import ImageResult

    ImageResult.model_validate({**{k: v for k, v in face.items() if k != "file"}, "model": report["model"]})


def test_keys_are_created_listed_and_revoked_from_the_command_line(tmp_path):
    env = {"UNMASK_DATA_DIR": str(tmp_path)}
    assert run_unmask("db", "upgrade", env=env).returncode == 0
    created = run_unmask("keys", "create", "--tenant", "acme", "--name", "moderation", env=env)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("um_")
    listed = run_unmask("keys", "list", env=env).stdout
    assert "acme" in listed and "active" in listed and secret not in listed
    prefix = secret[:11]
    assert run_unmask("keys", "revoke", prefix, env=env).returncode == 0
    assert "revoked" in run_unmask("keys", "list", "--tenant", "acme", env=env).stdout
    refused = run_unmask("keys", "create", "--tenant", "Not A Name", env=env)
    assert refused.returncode == 1 and "invalid_tenant" in refused.stderr
    allowed = run_unmask("tenants", "allow", "acme", "s3://customer-uploads/incoming/", env=env)
    assert "s3://customer-uploads/incoming/" in allowed.stdout
