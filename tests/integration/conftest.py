"""The whole stack on real services: Postgres, Redis, SeaweedFS, a worker process, the API."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests import services
from unmask.core.settings import Settings

pytestmark = pytest.mark.integration


@dataclass
class Stack:
    url: str
    settings: Settings
    s3: object  # boto3 client with the test credentials
    worker: object  # subprocess.Popen
    worker_log: Path
    http: requests.Session  # sends the test tenant's API key
    other_key: str  # a key of another tenant

    def submit(self, data: bytes, name: str = "image.jpg", **form) -> dict:
        response = self.http.post(f"{self.url}/v1/jobs", files={"image": (name, data)}, data=form, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()

    def wait(self, job_id: str, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.http.get(f"{self.url}/v1/jobs/{job_id}", timeout=10).json()
            if job["status"] in ("succeeded", "failed"):
                return job
            time.sleep(0.25)
        raise TimeoutError(f"job {job_id} still {job['status']}:\n{self.worker_log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def s3_url(tmp_path_factory: pytest.TempPathFactory):
    """A SeaweedFS node with signature auth, shared by the whole session."""
    with services.seaweedfs(tmp_path_factory.mktemp("weed")) as url:
        yield url


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, test_weights: Path, s3_url: str):
    import boto3
    from botocore.config import Config

    from unmask.api import create_app
    from unmask.migrations import upgrade

    work = tmp_path_factory.mktemp("stack")
    services.flush_redis(services.REDIS_URL)
    with services.scratch_database() as db_url:
        env = {
            "UNMASK_DATA_DIR": str(work / "data"),
            "UNMASK_DATABASE_URL": db_url,
            "UNMASK_BROKER_URL": services.REDIS_URL,
            "UNMASK_STORE": "s3",
            "UNMASK_S3_ENDPOINT_URL": s3_url,
            "UNMASK_S3_ACCESS_KEY": services.S3_ACCESS,
            "UNMASK_S3_SECRET_KEY": services.S3_SECRET,
            "UNMASK_S3_BUCKET": "unmask-test",
            "UNMASK_WEIGHTS": str(test_weights),
            "UNMASK_MODEL": "reference-irv1",
            "UNMASK_DEVICE": "cpu",
            "UNMASK_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",  # the tests' receivers
            "UNMASK_WEBHOOK_BACKOFF_SECONDS": "0.5",
        }
        settings = Settings(**{k.removeprefix("UNMASK_").lower(): v for k, v in env.items()})
        upgrade(db_url)
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name="us-east-1",
            aws_access_key_id=services.S3_ACCESS,
            aws_secret_access_key=services.S3_SECRET,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        s3.create_bucket(Bucket="unmask-test")
        s3.create_bucket(Bucket="customer-uploads")
        app = create_app(settings)
        _, secret = app.extensions["unmask"].keys.create(tenant="e2e")
        _, other_key = app.extensions["unmask"].keys.create(tenant="e2e-other")
        app.extensions["unmask"].jobs.tenants.allow_s3(
            tenant="e2e", location="s3://customer-uploads/incoming/"
        )
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {secret}"
        log = work / "worker.log"
        with (
            services.worker_process(env, log) as worker,
            services.worker_process(env, work / "webhooks.log", "--queue", "webhooks"),
            services.api_server(app) as url,
        ):
            yield Stack(url, settings, s3, worker, log, http, other_key)


@pytest.fixture(scope="session")
def openapi_spec(stack: Stack):
    from openapi_core import OpenAPI

    return OpenAPI.from_dict(requests.get(f"{stack.url}/openapi.json", timeout=10).json())


@pytest.fixture(autouse=True)
def responses_match_the_openapi_document(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Every answer the API gives during an end-to-end test must validate against the OpenAPI
    document it publishes: status, headers and body, per path and method."""
    if "stack" not in request.fixturenames:
        yield
        return
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

    stack, spec = request.getfixturevalue("stack"), request.getfixturevalue("openapi_spec")
    send, checked, failures = requests.Session.send, [], []

    def validating_send(self, prepared, **kwargs):  # noqa: ANN001, ANN202
        response = send(self, prepared, **kwargs)
        not_api = (f"{stack.url}/openapi.json", f"{stack.url}/dashboard")  # the document itself; HTML pages
        if prepared.url.startswith(stack.url) and not prepared.url.startswith(not_api):
            try:
                spec.validate_response(RequestsOpenAPIRequest(prepared), RequestsOpenAPIResponse(response))
                checked.append(prepared.url)
            except Exception as exc:  # collect every mismatch, report them together
                failures.append(f"{prepared.method} {prepared.url} -> {response.status_code}: {exc!r}")
        return response

    monkeypatch.setattr(requests.Session, "send", validating_send)
    yield
    assert not failures, "responses that do not match /openapi.json:\n" + "\n".join(failures)
    assert checked, "the test made no API request"
