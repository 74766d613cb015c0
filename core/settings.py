"""One typed settings object, read once from UNMASK_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from unmask.core.exceptions import ConfigurationError


class Settings(BaseSettings):
    """Every knob Unmask has. Secrets are SecretStr so they never show in repr or logs."""

    model_config = SettingsConfigDict(env_prefix="UNMASK_", extra="forbid", frozen=True)

    # Where embedded defaults keep their files (SQLite, broker, local objects).
    data_dir: Path = Path("./var")
    database_url: str = ""  # default: sqlite file in data_dir
    broker_url: str = ""  # default: kombu's SQLAlchemy transport on a sqlite file in data_dir

    store: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "unmask"
    s3_public_endpoint_url: str | None = None  # host clients use for presigned URLs
    url_expiry_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)
    # Signs URLs of the local object store; set it in production so URLs survive restarts.
    secret_key: SecretStr = SecretStr("")
    public_url: str = ""  # base URL clients reach the API on; default: the request's host

    model: str = "unmask-lite0"  # or unmask-irv1; both ship (detector/weights/MODEL_CARD.md)
    weights: Path | None = None  # default: the shipped weights of `model`
    device: str = "auto"
    # The classifier's arithmetic: auto is bf16 where the device has it natively (CUDA 8.0+, AMX
    # CPUs) and the architecture keeps its scores in it, else fp32; results name the one used.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    min_face_size: int = Field(20, ge=1)
    min_face_probability: float = Field(0.90, ge=0.0, le=1.0)

    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(40_000_000, ge=10_000)
    # API processes behind one port (`unmask api`; gunicorn when more than one).
    api_processes: int = Field(1, ge=1, le=64)
    worker_concurrency: int = Field(1, ge=1)  # processes, when worker_batch_size is 1
    # The batch path: a worker takes this many jobs at once (one thread each) and runs their
    # images through face detection and the classifier together; 1: one job at a time.
    worker_batch_size: int = Field(8, ge=1, le=256)
    batch_wait_ms: float = Field(20, ge=0, le=5000)  # how long a batch waits to fill up
    detect_max_side: int = Field(512, ge=64)  # MTCNN sees the image shrunk to this longer side
    # Where the batch path decodes JPEGs: `device` decodes a batch at once on the model's device
    # (nvJPEG on a GPU); `pillow` in each job's thread; `auto` is device on a GPU, pillow on a CPU.
    decode: Literal["auto", "pillow", "device"] = "auto"
    # Re-score each face after a mild re-encode; a verdict that flips becomes `uncertain`.
    stability_check: bool = True
    task_max_retries: int = Field(3, ge=0)
    # Nothing lost: the reconciler re-sends jobs queued longer than the deadline and jobs whose
    # worker stopped beating; a job that has started max_attempts times fails `worker_lost`.
    reconcile_every_seconds: float = Field(30, gt=0)
    queued_deadline_seconds: float = Field(120, gt=0)
    heartbeat_seconds: float = Field(10, gt=0)
    heartbeat_deadline_seconds: float = Field(60, gt=0)
    max_attempts: int = Field(3, ge=1)
    task_soft_time_limit: int = Field(300, ge=1)
    task_time_limit: int = Field(360, ge=1)
    max_batch_items: int = Field(10_000, ge=1)  # items per batch
    max_batch_upload_bytes: int = Field(256 * 1024 * 1024, ge=1024)  # one multipart batch request
    max_manifest_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    # Webhooks: hosts or CIDR ranges that may be private (loopback, RFC 1918, link-local),
    # comma-separated; the first retry after this many seconds, doubling; retries stop after the
    # window; each attempt times out.
    webhook_allowed_hosts: str = ""
    webhook_backoff_seconds: float = Field(5, gt=0)
    webhook_retry_window_seconds: float = Field(24 * 3600, gt=0)
    webhook_timeout_seconds: float = Field(10, gt=0)
    api_key: SecretStr | None = None  # what `unmask submit` sends
    log_format: Literal["text", "json"] = "text"
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)  # the worker's /metrics
    # Finished jobs (rows and objects) are deleted this many days after they finish; none: kept.
    retention_days: float | None = Field(None, gt=0)
    # Per API key, in the `limits` notation ("20/second;1000/minute"); counted in Redis when the
    # broker is Redis, else in memory.
    rate_limit: str = "20/second;2000/minute"
    # How long an API process trusts a key it has looked up; a key revoked elsewhere stops
    # working within this time (0: every request looks its key up).
    api_key_cache_seconds: float = Field(5.0, ge=0, le=300)
    # Touched by the worker once it is ready; `unmask up` waits for it before serving.
    worker_ready_file: Path | None = None

    @model_validator(mode="after")
    def _check_store(self) -> Settings:
        if self.store == "s3" and not self.s3_bucket:
            raise ValueError("UNMASK_S3_BUCKET is required when UNMASK_STORE=s3")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'unmask.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    @property
    def rate_limit_storage_url(self) -> str:
        """Counters live in Redis when the broker is Redis, so every API process shares them."""
        url = self.resolved_broker_url
        return url if url.startswith(("redis://", "rediss://")) else "memory://"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; bad values stop the process with a clear message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from exc
