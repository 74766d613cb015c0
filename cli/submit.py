"""`unmask submit`: push local files or S3 locations to a running Unmask as batches, follow them
with a progress bar, and save every verdict as JSONL. A moderator's bulk tool: no code needed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from unmask.core.exceptions import InvalidInput, UnmaskError
from unmask.files import IMAGE_SUFFIXES, expand

UPLOADS_PER_BATCH = 50


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.url}{path}", timeout=120, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError):
                error = {"code": f"http_{response.status_code}", "message": response.text[:200]}
            raise UnmaskError(error["message"], code=error["code"])
        return response.json()


def s3_batches(uris: list[str]) -> Iterator[dict[str, Any]]:
    """One batch per prefix, and one for all single objects."""
    items = []
    for uri in uris:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise InvalidInput(f"{uri}: expected s3://bucket/key or s3://bucket/prefix/")
        if key.lower().endswith(tuple(IMAGE_SUFFIXES)):
            items.append({"bucket": bucket, "key": key})
        else:
            yield {"source": {"s3": {"bucket": bucket, "prefix": key}}}
    if items:
        yield {"items": items}


def submit(
    client: Client, targets: list[str], *, metadata: dict[str, Any] | None, progress: bool = True
) -> list[str]:
    """Create the batches; returns their ids."""
    local = [Path(t) for t in targets if not t.startswith("s3://")]
    remote = [t for t in targets if t.startswith("s3://")]
    ids = []
    files = expand(local) if local else []
    with tqdm(total=len(files), desc="upload", unit="img", disable=not progress or not files) as bar:
        for start in range(0, len(files), UPLOADS_PER_BATCH):
            chunk = files[start : start + UPLOADS_PER_BATCH]
            parts = [("image", (p.name, p.read_bytes())) for p in chunk]
            form = {"metadata": json.dumps(metadata)} if metadata else {}
            ids.append(client.call("POST", "/v1/batches", files=parts, data=form)["id"])
            bar.update(len(chunk))
    for body in s3_batches(remote):
        extra = {"metadata": metadata} if metadata else {}
        ids.append(client.call("POST", "/v1/batches", json={**body, **extra})["id"])
    return ids


def wait(client: Client, ids: list[str], *, progress: bool = True, poll: float = 1.0) -> list[dict[str, Any]]:
    """Follow the batches until each is completed or cancelled."""
    with tqdm(desc="analyse", unit="img", disable=not progress) as bar:
        while True:
            batches = [client.call("GET", f"/v1/batches/{i}") for i in ids]
            totals = [b["counts"]["total"] for b in batches]
            done = sum(finished(b) for b in batches)
            if None not in totals:
                bar.total = sum(totals)
            bar.n = done
            bar.refresh()
            if all(b["status"] in ("completed", "cancelled") for b in batches):
                return batches
            time.sleep(poll)


def finished(batch: dict[str, Any]) -> int:
    return sum(
        n for s, n in batch["counts"]["by_status"].items() if s in ("succeeded", "failed", "cancelled")
    )


def save(client: Client, ids: list[str], out: Path) -> int:
    """Every job of the batches, one JSON line each; returns how many."""
    lines = 0
    with out.open("w") as fh:
        for batch_id in ids:
            response = client.http.get(
                f"{client.url}/v1/batches/{batch_id}/results.jsonl", stream=True, timeout=120
            )
            response.raise_for_status()
            for line in response.iter_lines():
                if line:
                    fh.write(line.decode() + "\n")
                    lines += 1
    return lines
