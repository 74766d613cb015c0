"""The job service on the real database and a real object store (SeaweedFS), each test inside a
transaction that is rolled back; the queue and the detector are small fakes of their ports."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from tests import factories, services
from unmask.core.exceptions import JobFailed, NotFound, QueueUnavailable
from unmask.core.jobs import JobService
from unmask.core.results import Analysis, FaceResult, ImageResult, ImageSize, Overlays, Provenance
from unmask.core.settings import Settings
from unmask.migrations import upgrade
from unmask.storage.models import Face, Job
from unmask.storage.objects import S3Store

pytestmark = pytest.mark.integration

MODEL = Provenance(
    name="test", weights_sha256="0" * 64, thresholds={"real": 0.4, "fake": 0.6}, code_version="t"
)


@pytest.fixture(scope="module")
def engine():
    with services.scratch_database() as url:
        upgrade(url)
        engine = create_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def sessions(engine):
    """Sessions bound to one connection whose outer transaction is rolled back after the test;
    the service's commits become savepoints inside it."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        outer.rollback()


@pytest.fixture(scope="module")
def store(s3_url):
    s3 = S3Store(
        bucket="service-test",
        endpoint_url=s3_url,
        region="us-east-1",
        access_key=services.S3_ACCESS,
        secret_key=services.S3_SECRET,
    )
    s3.ensure_bucket()
    return s3


class Queue:
    def __init__(self, down: bool = False) -> None:
        self.ids: list[uuid.UUID] = []
        self.down = down

    def enqueue_detect(self, job_id: uuid.UUID) -> None:
        if self.down:
            raise ConnectionError("broker down")
        self.ids.append(job_id)

    def ping(self) -> None:
        pass

    def depth(self) -> int:
        return len(self.ids)

    def enqueue_expand(self, batch_id: uuid.UUID) -> None:
        self.ids.append(batch_id)

    def enqueue_export(self, batch_id: uuid.UUID) -> None:
        self.ids.append(batch_id)


class Detector:
    """Answers with a fixed two-face analysis, or raises what it is told to."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.seen: list[bytes] = []

    def analyse(self, data: bytes) -> Analysis:
        self.seen.append(data)
        if self.error:
            raise self.error
        faces = [
            FaceResult(box=(1, 2, 30, 40), detection_probability=0.99, fake_probability=0.9, verdict="fake"),
            FaceResult(box=(5, 5, 9, 9), detection_probability=0.95, verdict="skipped", skip_reason="small"),
        ]
        result = ImageResult(
            verdict="fake",
            fake_probability=0.9,
            image=ImageSize(width=64, height=48),
            faces=faces,
            model=MODEL,
        )
        return Analysis(result, Overlays(image=b"whole-jpeg", faces=[b"face-jpeg", None]))


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def service(sessions: sessionmaker[Session], store: S3Store, queue: Queue | None = None) -> JobService:
    settings = Settings(store="s3", s3_bucket=store.bucket, max_upload_bytes=100_000)
    return JobService(sessions=sessions, store=store, queue=queue or Queue(), settings=settings)


def test_submit_stores_the_original_records_and_enqueues(sessions, store):
    queue = Queue()
    jobs = service(sessions, store, queue)
    data = jpeg()
    job = jobs.submit_upload(owner="acme", data=data, filename="a.jpg", metadata={"ref": 1})
    assert job.status == "queued" and job.metadata == {"ref": 1} and queue.ids == [job.id]
    with sessions() as session:
        row = session.get(Job, job.id)
        assert row is not None and row.input_sha256 is not None
        assert store.get(row.input_key) == data
    assert jobs.get(owner="acme", job_id=str(job.id)).id == job.id
    with pytest.raises(NotFound):
        jobs.get(owner="someone-else", job_id=str(job.id))


def test_broker_down_fails_the_job_instead_of_losing_it(sessions, store):
    jobs = service(sessions, store, Queue(down=True))
    with pytest.raises(QueueUnavailable):
        jobs.submit_upload(owner="acme", data=jpeg(), filename=None)
    with sessions() as session:
        row = session.scalars(select(Job).where(Job.owner == "acme")).one()
        assert (row.status, row.error_code) == ("failed", "queue_unavailable")


def test_detect_places_overlays_and_records_every_face(sessions, store):
    jobs = service(sessions, store)
    created = jobs.submit_upload(owner="acme", data=jpeg(), filename="a.jpg")
    assert jobs.detect(job_id=created.id, detector=Detector()) == "succeeded"
    job = jobs.get(owner="acme", job_id=str(created.id))
    assert job.status == "succeeded" and job.attempts == 1 and job.result is not None
    assert [f.verdict for f in job.result.faces] == ["fake", "skipped"]
    assert job.result.model == MODEL
    with sessions() as session:
        row = session.get(Job, created.id)
        assert row is not None and store.get(row.overlay_key) == b"whole-jpeg"
        faces = session.scalars(select(Face).where(Face.job_id == created.id).order_by(Face.index)).all()
        assert store.get(faces[0].overlay_key) == b"face-jpeg" and faces[1].overlay_key is None
    # A redelivery of a finished job changes nothing.
    again = Detector()
    assert jobs.detect(job_id=created.id, detector=again) == "skipped" and again.seen == []


def test_a_rerun_replaces_faces_rather_than_adding(sessions, store):
    jobs = service(sessions, store)
    with sessions.begin() as session:
        row = factories.make_job(session, status="running", attempts=1)
        factories.make_face(session, row)
        factories.make_face(session, row)
        factories.make_face(session, row)
        job_id = row.id
    analysis = Detector().analyse(b"")
    from unmask.core.results import OverlayLocations

    jobs.record_result(job_id=job_id, result=analysis.result, overlays=OverlayLocations(None, [None, None]))
    with sessions() as session:
        assert len(session.scalars(select(Face).where(Face.job_id == job_id)).all()) == 2


def test_jobs_finished_together_are_recorded_in_one_transaction(sessions, store):
    """The batch path's group commit: one commit for every job's result and faces; a job
    deleted meanwhile is reported alone and the others are still recorded."""
    from sqlalchemy import event

    from unmask.core.results import OverlayLocations

    jobs = service(sessions, store)
    with sessions.begin() as session:
        ids = [factories.make_job(session, status="running", attempts=1).id for _ in range(3)]
    analysis = Detector().analyse(b"")
    placed = OverlayLocations("overlays/whole.jpg", ["overlays/face-0.jpg", None])
    commits: list[object] = []
    event.listen(sessions, "after_commit", commits.append)
    gone = uuid.uuid4()
    outcomes = jobs.record_results(
        [(ids[0], analysis.result, placed), (gone, analysis.result, placed)]
        + [(job_id, analysis.result, placed) for job_id in ids[1:]]
    )
    assert len(commits) == 1
    assert outcomes[0] is None and isinstance(outcomes[1], NotFound) and outcomes[2:] == [None, None]
    with sessions() as session:
        for job_id in ids:
            assert session.get(Job, job_id).status == "succeeded"
            assert len(session.scalars(select(Face).where(Face.job_id == job_id)).all()) == 2


@pytest.mark.parametrize("code", ["image_too_large", "not_an_image"])
def test_input_the_detector_refuses_fails_the_job_with_its_code(sessions, store, code):
    jobs = service(sessions, store)
    created = jobs.submit_upload(owner="acme", data=jpeg(), filename="a.jpg")
    assert jobs.detect(job_id=created.id, detector=Detector(JobFailed("no", code=code))) == "failed"
    job = jobs.get(owner="acme", job_id=str(created.id))
    assert job.status == "failed" and job.error is not None and job.error.code == code


def test_a_missing_original_fails_with_object_not_found(sessions, store):
    jobs = service(sessions, store)
    with sessions.begin() as session:
        job_id = factories.make_job(session, input_key="uploads/none/x/original.jpg").id
    assert jobs.detect(job_id=job_id, detector=Detector()) == "failed"
    with sessions() as session:
        assert session.get(Job, job_id).error_code == "object_not_found"  # type: ignore[union-attr]


def test_listing_is_scoped_newest_first_and_paged(sessions, store):
    jobs = service(sessions, store)
    with sessions.begin() as session:
        ids = [factories.make_job(session, owner="pager").id for _ in range(5)]
        factories.make_job(session, owner="other")
    first = jobs.list(owner="pager", limit=3)
    assert len(first.jobs) == 3 and first.next_cursor
    rest = jobs.list(owner="pager", limit=3, cursor=first.next_cursor)
    assert rest.next_cursor is None
    assert {j.id for j in first.jobs + rest.jobs} == set(ids)


def test_reconciler_resends_lost_jobs_and_gives_up_on_dying_workers(sessions, store):
    from datetime import timedelta

    from unmask.core.reconcile import reconcile
    from unmask.storage.models import utcnow

    queue = Queue()
    jobs = service(sessions, store, queue)
    long_ago = utcnow() - timedelta(hours=1)
    with sessions.begin() as session:
        lost_in_broker = factories.make_job(session, enqueued_at=long_ago).id
        fresh = factories.make_job(session, enqueued_at=utcnow()).id
        died_once = factories.make_job(session, status="running", attempts=1, started_at=long_ago).id
        died_often = factories.make_job(
            session, status="running", attempts=3, started_at=long_ago, heartbeat_at=long_ago
        ).id
        alive = factories.make_job(
            session, status="running", attempts=1, started_at=long_ago, heartbeat_at=utcnow()
        ).id
    counts = reconcile(jobs)
    assert counts["resent"] == 2 and counts["worker_lost"] == 1
    assert set(queue.ids) == {lost_in_broker, died_once}
    with sessions() as session:
        status = {
            i: session.get(Job, i).status for i in (lost_in_broker, fresh, died_once, died_often, alive)
        }  # type: ignore[union-attr]
        assert status == {
            lost_in_broker: "queued",
            fresh: "queued",
            died_once: "queued",
            died_often: "failed",
            alive: "running",
        }
        assert session.get(Job, died_often).error_code == "worker_lost"  # type: ignore[union-attr]
    # A second pass right away sends nothing twice.
    queue.ids.clear()
    assert reconcile(jobs)["resent"] == 0


def test_a_job_is_never_started_twice_at_once(sessions, store):
    jobs = service(sessions, store)
    with sessions.begin() as session:
        job_id = factories.make_job(session).id
    assert jobs.start(job_id=job_id) is not None
    assert jobs.start(job_id=job_id) is None  # a second delivery while it runs
    jobs.release(job_id=job_id)
    assert jobs.start(job_id=job_id) is not None  # handed back, it may start again
    with sessions() as session:
        assert session.get(Job, job_id).attempts == 2  # type: ignore[union-attr]


def test_the_worker_beats_while_the_model_runs(sessions, store):
    import time

    class Slow(Detector):
        def analyse(self, data: bytes) -> Analysis:
            time.sleep(0.35)
            return super().analyse(data)

    jobs = service(sessions, store)
    jobs.settings = Settings(store="s3", s3_bucket=store.bucket, heartbeat_seconds=0.1)
    created = jobs.submit_upload(owner="acme", data=jpeg(), filename=None)
    beats = []
    original = jobs.heartbeat

    def counting(*, job_id):  # noqa: ANN001, ANN202
        beats.append(job_id)
        original(job_id=job_id)

    jobs.heartbeat = counting  # type: ignore[method-assign]
    assert jobs.detect(job_id=created.id, detector=Slow()) == "succeeded"
    assert len(beats) >= 2 and set(beats) == {created.id}


def test_retention_purges_old_finished_jobs_with_their_objects(sessions, store):
    from datetime import timedelta

    from unmask.storage.models import utcnow

    jobs = service(sessions, store)
    created = jobs.submit_upload(owner="acme", data=jpeg(), filename=None)
    jobs.detect(job_id=created.id, detector=Detector())
    with sessions.begin() as session:
        row = session.get(Job, created.id)
        assert row is not None
        keys = [row.input_key, row.overlay_key]
        row.finished_at = utcnow() - timedelta(days=40)
        recent = factories.make_job(session, status="succeeded", finished_at=utcnow()).id
    assert jobs.purge_older_than(days=30) == 1
    with sessions() as session:
        assert session.get(Job, created.id) is None and session.get(Job, recent) is not None
    from unmask.storage.errors import ObjectNotFound

    for key in keys:
        with pytest.raises(ObjectNotFound):
            store.get(key)
