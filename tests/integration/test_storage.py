"""The S3 backend against SeaweedFS with signatures enforced."""

from __future__ import annotations

import pytest
import requests

from tests import services
from unmask.storage.errors import AccessDenied, ObjectNotFound, ObjectTooLarge
from unmask.storage.objects import S3Store, new_key

pytestmark = pytest.mark.integration


def store(s3_url: str, secret: str = services.S3_SECRET) -> S3Store:
    s3 = S3Store(bucket="storage-test", endpoint_url=s3_url, region="us-east-1",
                 access_key=services.S3_ACCESS, secret_key=secret)  # fmt: skip
    if secret == services.S3_SECRET:
        s3.ensure_bucket()
    return s3


def test_put_get_and_presigned_url(s3_url):
    s3 = store(s3_url)
    key = new_key("overlays", "job", "image.jpg")
    s3.put(key, b"\xff\xd8 bytes", "image/jpeg")
    assert s3.get(key) == b"\xff\xd8 bytes"
    response = requests.get(s3.url(key, 60), timeout=10)
    assert response.status_code == 200 and response.content == b"\xff\xd8 bytes"
    assert response.headers["Content-Type"] == "image/jpeg"


def test_errors_map_to_domain_exceptions(s3_url):
    s3 = store(s3_url)
    with pytest.raises(ObjectNotFound):
        s3.get("no/such/key")
    with pytest.raises(ObjectNotFound):
        s3.get("key", bucket="no-such-bucket")
    s3.put("big", b"x" * 2048, "application/octet-stream")
    with pytest.raises(ObjectTooLarge):
        s3.get("big", max_bytes=1024)
    with pytest.raises(AccessDenied) as info:
        store(s3_url, secret="wrong-secret").get("big")
    assert info.value.code == "access_denied"


def test_keys_are_predictable_but_not_guessable():
    a, b = new_key("uploads", "job-1", "original.jpg"), new_key("uploads", "job-1", "original.jpg")
    assert a.startswith("uploads/job-1/") and a.endswith("/original.jpg")
    assert a != b and len(a.split("/")[2]) >= 20
