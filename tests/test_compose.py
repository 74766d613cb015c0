"""docker-compose.yml describes the production shape (no Docker engine runs in CI)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_has_every_service_and_a_gpu_worker():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"api", "worker", "postgres", "redis", "s3"}
    worker = compose["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert worker["environment"]["UNMASK_DEVICE"] == "cuda"
    for name in ("api", "worker"):
        env = compose["services"][name]["environment"]
        assert env["UNMASK_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["UNMASK_BROKER_URL"].startswith("redis://")
        assert env["UNMASK_STORE"] == "s3"
    assert (ROOT / "deploy" / "s3.json").exists()
