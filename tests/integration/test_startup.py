"""The production start-up sequence of docker-compose.yml, with the file's own commands run as
local processes against the test services: migrate, then API and worker, then /readyz."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests
import yaml

from tests import services
from tests.test_compose import ROOT

pytestmark = pytest.mark.integration


def command(service: dict, **replace: str) -> list[str]:
    argv = [sys.executable, "-m", "unmask", *service["command"][1:]]  # `unmask` as this venv's
    return [replace.get(a, a) for a in argv]


def test_migrate_then_api_and_worker_then_ready(tmp_path, s3_url):
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert spec["worker"]["command"] == ["unmask", "worker"]  # what services.worker_process runs
    port = services.free_port()
    with services.scratch_database() as db_url:
        env = {
            **os.environ,
            "UNMASK_DATA_DIR": str(tmp_path),
            "UNMASK_DATABASE_URL": db_url,
            "UNMASK_BROKER_URL": services.REDIS_URL.replace("/11", "/13"),
            "UNMASK_STORE": "s3",
            "UNMASK_S3_ENDPOINT_URL": s3_url,
            "UNMASK_S3_ACCESS_KEY": services.S3_ACCESS,
            "UNMASK_S3_SECRET_KEY": services.S3_SECRET,
            "UNMASK_S3_BUCKET": "startup-bucket",  # nobody made it: the API or worker must
            "UNMASK_DEVICE": "cpu",
        }
        migrate = subprocess.run(
            command(spec["migrate"]), env=env, capture_output=True, text=True, timeout=120
        )
        assert migrate.returncode == 0, migrate.stderr
        api = subprocess.Popen(command(spec["api"], **{"8000": str(port), "0.0.0.0": "127.0.0.1"}), env=env)
        worker_log = tmp_path / "worker.log"
        try:
            with services.worker_process(
                {k: v for k, v in env.items() if k.startswith("UNMASK_")}, worker_log
            ):
                services.wait_for_port(port, 60)
                deadline = time.monotonic() + 60
                while (
                    ready := requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
                ).status_code != 200:
                    assert time.monotonic() < deadline, ready.text
                    time.sleep(0.5)
                assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "store": "ok"}
        finally:
            services.stop(api)
