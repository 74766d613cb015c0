"""Object store: one interface, an S3 backend (boto3) and a local-folder backend."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import urlencode

from unmask.storage.errors import (
    AccessDenied,
    InvalidKey,
    ObjectNotFound,
    ObjectTooLarge,
    StorageUnavailable,
)


def new_key(prefix: str, job_id: object, name: str) -> str:
    """A predictable layout with an unguessable part: prefix/job/token/name."""
    return f"{prefix}/{job_id}/{secrets.token_urlsafe(16)}/{name}"


class ObjectStore(Protocol):
    bucket: str
    reads_other_buckets: bool  # can jobs reference objects in buckets the client names?

    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str, *, bucket: str | None = None, max_bytes: int | None = None) -> bytes: ...
    def url(self, key: str, expires: int, base_url: str = "") -> str: ...
    def delete(self, key: str) -> None: ...
    def list_keys(self, *, bucket: str, prefix: str) -> Iterator[str]: ...
    def read_lines(self, *, bucket: str, key: str, max_bytes: int) -> Iterator[str]: ...
    def upload(self, *, bucket: str, key: str, fileobj: IO[bytes], content_type: str) -> None: ...
    def ping(self) -> None: ...


class LocalStore:
    """Objects as files under a folder; URLs are HMAC-signed routes served by the API."""

    reads_other_buckets = False

    def __init__(self, root: Path, secret: bytes, bucket: str = "local") -> None:
        self.root = root.resolve()
        self.secret = secret
        self.bucket = bucket

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or ".." in Path(key).parts:
            raise InvalidKey("invalid object key")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)

    def get(self, key: str, *, bucket: str | None = None, max_bytes: int | None = None) -> bytes:
        if bucket not in (None, self.bucket):
            raise InvalidKey("the local object store has no other buckets; S3 sources need UNMASK_STORE=s3")
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"object {key!r} not found")
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise ObjectTooLarge(f"object is larger than {max_bytes} bytes")
        return path.read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _own(self, bucket: str) -> None:
        if bucket != self.bucket:
            raise InvalidKey("the local object store has no other buckets; S3 sources need UNMASK_STORE=s3")

    def list_keys(self, *, bucket: str, prefix: str) -> Iterator[str]:
        self._own(bucket)
        for path in sorted(self.root.rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and key.startswith(prefix):
                yield key

    def upload(self, *, bucket: str, key: str, fileobj: IO[bytes], content_type: str) -> None:
        self._own(bucket)
        self.put(key, fileobj.read(), content_type)

    def read_lines(self, *, bucket: str, key: str, max_bytes: int) -> Iterator[str]:
        self._own(bucket)
        data = self.get(key, max_bytes=max_bytes)
        yield from data.decode("utf-8", "replace").splitlines()

    def signature(self, key: str, expires: int) -> str:
        msg = f"{key}\n{expires}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    def verify(self, key: str, expires: int, signature: str) -> bool:
        return expires >= time.time() and hmac.compare_digest(self.signature(key, expires), signature)

    def url(self, key: str, expires: int, base_url: str = "") -> str:
        until = int(time.time()) + expires
        query = urlencode({"expires": until, "signature": self.signature(key, until)})
        return f"{base_url.rstrip('/')}/v1/objects/{key}?{query}"

    def ping(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.root.is_dir():
            raise StorageUnavailable(f"{self.root} is not a folder")


class S3Store:
    """Any S3-compatible store (AWS, SeaweedFS, MinIO) with path-style addressing."""

    reads_other_buckets = True

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        region: str,
        access_key: str | None,
        secret_key: str | None,
        public_endpoint_url: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        cfg = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
        kwargs = dict(
            region_name=region, aws_access_key_id=access_key, aws_secret_access_key=secret_key, config=cfg
        )
        self.client = boto3.client("s3", endpoint_url=endpoint_url, **kwargs)
        # Presigned URLs are signed for a host; clients may reach the store by another name.
        self.signer = (
            boto3.client("s3", endpoint_url=public_endpoint_url, **kwargs)
            if public_endpoint_url
            else self.client
        )
        self.bucket = bucket

    def _call(self, fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN202
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound", "NoSuchBucket"):
                raise ObjectNotFound(
                    f"object {kwargs.get('Key', '')!r} not found in bucket {kwargs.get('Bucket')!r}"
                ) from exc
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise AccessDenied("access to the object was denied") from exc
            raise StorageUnavailable(f"object store error: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"object store unreachable: {exc}") from exc

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._call(self.client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str, *, bucket: str | None = None, max_bytes: int | None = None) -> bytes:
        bucket = bucket or self.bucket
        if max_bytes is not None:
            head = self._call(self.client.head_object, Bucket=bucket, Key=key)
            if head["ContentLength"] > max_bytes:
                raise ObjectTooLarge(f"object is larger than {max_bytes} bytes")
        body = self._call(self.client.get_object, Bucket=bucket, Key=key)["Body"]
        return body.read()

    def url(self, key: str, expires: int, base_url: str = "") -> str:
        return self.signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
        )

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Bucket=self.bucket, Key=key)

    def ping(self) -> None:
        self._call(self.client.head_bucket, Bucket=self.bucket)

    def list_keys(self, *, bucket: str, prefix: str) -> Iterator[str]:
        """Every key under the prefix, a page of up to 1,000 at a time (never all in memory)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        iterator = iter(pages)
        while True:
            page = self._call(next, iterator, None)
            if page is None:
                return
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    yield obj["Key"]

    def upload(self, *, bucket: str, key: str, fileobj: IO[bytes], content_type: str) -> None:
        """Stream a file object to any bucket the credentials may write (multipart when large)."""
        self._call(self.client.upload_fileobj, fileobj, bucket, key, ExtraArgs={"ContentType": content_type})

    def read_lines(self, *, bucket: str, key: str, max_bytes: int) -> Iterator[str]:
        """The object's lines, streamed."""
        head = self._call(self.client.head_object, Bucket=bucket, Key=key)
        if head["ContentLength"] > max_bytes:
            raise ObjectTooLarge(f"object is larger than {max_bytes} bytes")
        body = self._call(self.client.get_object, Bucket=bucket, Key=key)["Body"]
        for line in body.iter_lines():
            yield line.decode("utf-8", "replace")

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists; StorageUnavailable when the store is down."""
        try:
            self._call(self.client.head_bucket, Bucket=self.bucket)
        except ObjectNotFound:
            self._call(self.client.create_bucket, Bucket=self.bucket)
