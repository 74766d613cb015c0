"""Small row factories: a valid row with overrides, instead of hand-built rows in every test."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from sqlalchemy.orm import Session

from unmask.storage.models import Face, Job

_serial = itertools.count()


def make_job(session: Session, **overrides: Any) -> Job:
    n = next(_serial)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "owner": "default",
        "status": "queued",
        "source": "upload",
        "input_bucket": "unmask-test",
        "input_key": f"uploads/job-{n}/token/original.jpg",
        "input_filename": f"image-{n}.jpg",
        "attempts": 0,
    }
    values.update(overrides)
    job = Job(**values)
    session.add(job)
    session.flush()
    return job


def make_face(session: Session, job: Job, **overrides: Any) -> Face:
    values: dict[str, Any] = {
        "index": len(job.faces),
        "x1": 10.0,
        "y1": 10.0,
        "x2": 90.0,
        "y2": 110.0,
        "detection_probability": 0.999,
        "landmarks": [[30.0, 40.0]] * 5,
        "fake_probability": 0.2,
        "verdict": "real",
    }
    values.update(overrides)
    face = Face(job=job, **values)
    session.add(face)
    session.flush()
    return face
