"""Build the configured object store from settings."""

from __future__ import annotations

import secrets
from pathlib import Path

from unmask.core.settings import Settings
from unmask.storage.objects import LocalStore, ObjectStore, S3Store


def local_secret(settings: Settings) -> bytes:
    """The URL-signing secret: from settings, else one kept in the data folder."""
    if settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode()
    path = Path(settings.data_dir) / ".secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def make_store(settings: Settings) -> ObjectStore:
    if settings.store == "s3":
        return S3Store(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
            secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            public_endpoint_url=settings.s3_public_endpoint_url,
        )
    return LocalStore(settings.objects_dir, local_secret(settings))
