"""docker-compose.yml as an operator meets it. No Docker engine runs here: compose's own
`config` validates the file when it is installed (.ci/run installs Debian's docker-compose), and
the integration test runs the file's own commands, in its order, as local processes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"UNMASK_S3_SECRET_KEY": "s3-secret", "UNMASK_SECRET_KEY": "url-secret", "POSTGRES_PASSWORD": "pg"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_compose_validates_and_refuses_to_start_without_secrets():
    env = {**os.environ, **SECRETS}
    ok = subprocess.run(["docker-compose", "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    missing = {k: v for k, v in env.items() if k not in SECRETS}
    refused = subprocess.run(
        ["docker-compose", "config", "-q"], cwd=ROOT, env=missing, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "UNMASK_S3_SECRET_KEY" in refused.stderr + refused.stdout


def test_services_wait_for_the_migration_and_share_one_source_of_each_secret():
    services = compose()["services"]
    assert set(services) == {"migrate", "api", "worker", "webhooks", "postgres", "redis", "s3"}
    assert services["webhooks"]["command"] == ["unmask", "worker", "--queue", "webhooks"]
    assert services["migrate"]["command"] == ["unmask", "db", "upgrade"]
    for name in ("api", "worker", "webhooks"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        env = services[name]["environment"]
        assert env["UNMASK_S3_SECRET_KEY"] == "${UNMASK_S3_SECRET_KEY:?set UNMASK_S3_SECRET_KEY}"
        assert env["UNMASK_DATA_DIR"] == "/data"
    assert (
        services["s3"]["environment"]["S3_SECRET_KEY"] == "${UNMASK_S3_SECRET_KEY:?set UNMASK_S3_SECRET_KEY}"
    )
    worker = services["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert not (ROOT / "deploy" / "s3.json").exists()  # no second copy of the S3 secret


def test_the_image_runs_unprivileged_with_a_writable_data_folder():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER unmask" in dockerfile and "chown unmask /data" in dockerfile
    assert "UNMASK_DATA_DIR=/data" in dockerfile
    for part in ("cli", "api", "core", "detector", "training", "storage", "worker", "migrations"):
        assert f"COPY {part} ./{part}" in dockerfile
