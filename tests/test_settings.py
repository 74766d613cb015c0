"""Settings: environment prefix, validation, secrets kept out of repr."""

from __future__ import annotations

import pytest

from unmask.core.exceptions import ConfigurationError
from unmask.core.settings import load_settings


def test_reads_prefixed_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UNMASK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("UNMASK_MIN_FACE_SIZE", "48")
    settings = load_settings()
    assert settings.min_face_size == 48
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/unmask.db"
    assert settings.resolved_broker_url.startswith("sqla+sqlite:///")


def test_secrets_are_masked(monkeypatch):
    monkeypatch.setenv("UNMASK_S3_SECRET_KEY", "hunter2-very-secret")
    monkeypatch.setenv("UNMASK_SECRET_KEY", "another-secret")
    settings = load_settings()
    assert "hunter2" not in repr(settings) and "another-secret" not in repr(settings)
    assert settings.s3_secret_key.get_secret_value() == "hunter2-very-secret"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UNMASK_STORE", "ftp"),
        ("UNMASK_MIN_FACE_PROBABILITY", "2"),
        ("UNMASK_URL_EXPIRY_SECONDS", "5"),
    ],
)
def test_bad_values_fail_fast(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name.removeprefix("UNMASK_").lower()):
        load_settings()
