"""What each `unmask` sub-command does; imported lazily so `--help` stays fast."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from unmask.core.exceptions import ConfigurationError, InvalidInput
from unmask.core.settings import Settings, load_settings
from unmask.core.tasks import QUEUE, WEBHOOK_QUEUE

log = logging.getLogger("unmask")


def check_weights(settings: Settings) -> Path:
    """Refuse to run a worker without real classifier weights."""
    from unmask.detector.registry import read_checkpoint, resolve_weights

    path = resolve_weights(settings.model, settings.weights)
    read_checkpoint(path)
    return path


def upgrade_db(settings: Settings) -> None:
    from unmask.migrations import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def serve(settings: Settings, host: str, port: int, threads: int, processes: int = 1) -> None:
    """One process: waitress (any platform). Several: gunicorn's threaded workers behind one port,
    each building its own app after the fork, so no connection pool crosses a fork. One Flask
    process is GIL-bound at under one core (bench/RESULTS.md), so processes are what scale."""
    from unmask.api import create_app

    if processes <= 1:
        from waitress import serve as waitress_serve

        waitress_serve(create_app(settings), host=host, port=port, threads=threads, ident="unmask")
        return
    from gunicorn.app.base import BaseApplication

    class Api(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in {
                "bind": f"{host}:{port}",
                "workers": processes,
                "worker_class": "gthread",
                "threads": threads,
                "accesslog": None,
                "graceful_timeout": 30,
                # Idle keep-alive connections stay open longer than a load balancer's idle
                # timeout (60 s on AWS ALB), so the server never closes one a client is about
                # to send on; gunicorn's default of 2 s reset clients that paused for 2 s.
                "keepalive": 75,
            }.items():
                self.cfg.set(name, value)

        def load(self) -> object:
            return create_app(settings)

    Api().run()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    """The worker as a child process, so torch and the model stay out of the API's process.
    Returns once the worker has loaded its model (or raises with the reason it stopped)."""
    worker = subprocess.Popen([sys.executable, "-m", "unmask", "worker", "--loglevel", "warning"], env=env)
    ready = Path(env["UNMASK_DATA_DIR"]) / "worker.ready"
    while not ready.exists():
        if worker.poll() is not None:
            raise ConfigurationError(f"the worker stopped during start-up (exit code {worker.returncode})")
        time.sleep(0.2)
    return worker


def run_up(args: argparse.Namespace) -> int:
    overrides = {"data_dir": args.data_dir.resolve()} if args.data_dir else {}
    settings = load_settings(**overrides)
    upgrade_db(settings)
    data_dir = settings.data_dir.resolve()
    (data_dir / "worker.ready").unlink(missing_ok=True)
    env = dict(
        os.environ, UNMASK_DATA_DIR=str(data_dir), UNMASK_WORKER_READY_FILE=str(data_dir / "worker.ready")
    )
    # Stop cleanly on Ctrl-C and SIGTERM, even where a shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    worker = deliverer = None
    try:
        worker = start_worker(env)
        deliverer = subprocess.Popen(
            [sys.executable, "-m", "unmask", "worker", "--queue", "webhooks", "--loglevel", "warning"],
            env=env,
        )
        url = f"http://{args.host}:{args.port}"
        key = local_key(settings)
        print(f"Unmask is up at {url}  (data in {data_dir}, worker pid {worker.pid})", flush=True)
        print(f"  API key (tenant local, kept in {data_dir / 'api-key'}): {key}", flush=True)
        print(f"  curl -H 'Authorization: Bearer {key}' -F image=@face.jpg {url}/v1/jobs", flush=True)
        print("  Ctrl-C stops it", flush=True)
        serve(settings, args.host, args.port, threads=8)
    finally:
        for child in (worker, deliverer):
            if child is not None:
                stop(child)
    return 0


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def run_api(args: argparse.Namespace) -> int:
    from unmask.core.wiring import ensure_bucket, make_store

    settings = load_settings()
    ensure_bucket(make_store(settings))  # whichever of API and worker starts first makes it
    serve(settings, args.host, args.port, args.threads, processes=args.processes or settings.api_processes)
    return 0


def run_worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from celery.signals import worker_process_init, worker_ready, worker_shutdown

    from unmask.core.wiring import ensure_bucket, make_store
    from unmask.worker.app import create_celery
    from unmask.worker.runtime import ReconcileTimer, get_runtime

    app = create_celery(settings)
    if args.queue == "webhooks":  # no model: deliveries wait on the network, so many threads
        hooks_timer = ReconcileTimer(settings, app, queue="webhooks")
        worker_ready.connect(lambda **_: hooks_timer.start(), weak=False)
        return run_celery(app, WEBHOOK_QUEUE, args.loglevel, ["--pool=threads", "--concurrency=16"])
    if settings.worker_batch_size > 1:
        # The batch path: one thread per job in hand, one model shared through the batcher.
        get_runtime(settings, app)  # loading the model here also validates the weights
        pool = ["--pool=threads", f"--concurrency={settings.worker_batch_size}"]
    elif settings.worker_concurrency == 1:
        get_runtime(settings, app)  # solo pool: loading the model here also validates the weights
        pool = ["--pool=solo"]
    else:
        check_weights(settings)  # the children load the model after the fork
        worker_process_init.connect(lambda **_: get_runtime(settings, app), weak=False)
        pool = ["--pool=prefork", f"--concurrency={settings.worker_concurrency}"]
    ensure_bucket(make_store(settings))
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port)
    from unmask.detector.predictor import pick_device

    timer = ReconcileTimer(settings, app, device=str(pick_device(settings.device)))
    worker_ready.connect(lambda **_: timer.start(), weak=False)
    worker_shutdown.connect(lambda **_: timer.stop(), weak=False)
    ready_file = settings.worker_ready_file
    if ready_file is not None:  # `unmask up` waits for this before it serves
        worker_ready.connect(lambda **_: ready_file.touch(), weak=False)
    return run_celery(app, QUEUE, args.loglevel, pool)


def run_celery(app, queue: str, loglevel: str, pool: list[str]) -> int:  # noqa: ANN001
    app.worker_main(
        ["worker", "-Q", queue, f"--loglevel={loglevel}", "--without-gossip", "--without-mingle", *pool]
    )
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from unmask import submit as bulk

    settings = load_settings()
    key = args.key or (settings.api_key.get_secret_value() if settings.api_key else None)
    if not key:
        raise ConfigurationError("an API key is needed: --key KEY or UNMASK_API_KEY")
    metadata = json.loads(args.metadata) if args.metadata else None
    client = bulk.Client(args.url, key)
    ids = bulk.submit(client, args.targets, metadata=metadata)
    print("batches: " + " ".join(ids), flush=True)
    if args.wait or args.out:
        batches = bulk.wait(client, ids)
        for batch in batches:
            verdicts, statuses = (json.dumps(batch["counts"][k]) for k in ("by_verdict", "by_status"))
            print(f"{batch['id']}: {batch['status']}, verdicts {verdicts}, jobs {statuses}")
    if args.out:
        print(f"{bulk.save(client, ids, args.out)} results in {args.out}")
    return 0


def key_service(settings: Settings):  # noqa: ANN201
    from unmask.core.keys import KeyService
    from unmask.core.wiring import make_sessions

    return KeyService(sessions=make_sessions(settings))


def run_keys(args: argparse.Namespace) -> int:
    keys = key_service(load_settings())
    if args.action == "create":
        info, secret = keys.create(tenant=args.tenant, name=args.name)
        print(f"key {info.prefix}… for tenant {info.tenant} (id {info.id}); the secret, shown once:")
        print(secret)
    elif args.action == "revoke":
        info = keys.revoke(key=args.key)
        print(f"revoked {info.prefix}… (tenant {info.tenant})")
    else:
        for info in keys.list(tenant=args.tenant):
            state = f"revoked {info.revoked_at:%Y-%m-%d}" if info.revoked_at else "active"
            print(f"{info.id}  {info.prefix}…  {info.tenant:20s} {state:18s} {info.name or ''}")
    return 0


def run_reviews(args: argparse.Namespace) -> int:
    from unmask.core.tasks import TaskQueue
    from unmask.core.wiring import build_services

    services = build_services(load_settings(), queue=TaskQueue(None))  # reads only: nothing is queued
    counts = services.reviews.export_labelled(owner=args.tenant, out=args.out)
    print(f"{counts['fake']} confirmed fakes, {counts['real']} real faces in {args.out}, with manifest.jsonl")
    return 0


def run_tenants(args: argparse.Namespace) -> int:
    from unmask.core.keys import TenantService
    from unmask.core.wiring import make_sessions

    tenants = TenantService(sessions=make_sessions(load_settings()))
    if args.action == "limit":
        tenants.set_max_batch_items(tenant=args.tenant, limit=args.max_batch_items or None)
        print(f"tenant {args.tenant}: batches of at most {args.max_batch_items or 'the default'} items")
        return 0
    allowed = tenants.allow_s3(tenant=args.tenant, location=args.location)
    print(f"tenant {args.tenant} may read: {', '.join('s3://' + a for a in allowed)}")
    return 0


def local_key(settings: Settings) -> str:
    """The key `unmask up` makes on first start (tenant `local`), kept in the data folder."""
    path = settings.data_dir / "api-key"
    if not path.exists():
        _, secret = key_service(settings).create(tenant="local", name="unmask up")
        path.write_text(secret + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def run_db(args: argparse.Namespace) -> int:
    from unmask.migrations import downgrade

    settings = load_settings()
    if args.action == "upgrade":
        upgrade_db(settings)
        print(f"database at head: {settings.resolved_database_url.split('@')[-1]}")
    else:
        if not args.revision:
            raise ConfigurationError("db downgrade needs a revision, e.g. `base`")
        downgrade(settings.resolved_database_url, args.revision)
    return 0


def predictor_from_args(args: argparse.Namespace):  # noqa: ANN201
    from unmask.detector.predictor import Predictor

    set_threads(args.threads)
    return Predictor.from_settings(
        weights=args.weights, model_name=args.model, device=args.device, precision=args.precision
    )


def run_scan(args: argparse.Namespace) -> int:
    from unmask.scan import scan_paths
    from unmask.worker.detection import PredictorDetector

    max_pixels = load_settings().max_pixels
    detector = PredictorDetector(
        predictor_from_args(args), max_pixels=max_pixels, explain=not args.no_overlays
    )
    report = scan_paths(detector, args.paths, args.out)
    counts: dict[str, int] = {}
    for row in report["images"]:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    print(f"{len(report['images'])} images: {json.dumps(counts)}; report {args.out / 'report.json'}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from unmask.training.evaluate import evaluate

    metrics = evaluate(predictor_from_args(args), args.data, args.out, args.cache)
    shown = {k: v for k, v in metrics.items() if k not in ("by_source",)}
    print(json.dumps(shown, indent=2))
    for source, m in metrics.get("by_source", {}).items():
        auc = "–" if m["auc"] is None else f"{m['auc']:.3f}"
        acc = "–" if m["accuracy"] is None else f"{m['accuracy']:.3f}"
        print(f"  {source:14s} n={m['n']:5d} auc={auc} accuracy={acc} no_face={m['no_face']}")
    print(f"report: {args.out / 'metrics.json'}")
    return 0


def parse_logit_scale(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise InvalidInput(f"--logit-scale takes A,B (two numbers), not {text!r}") from exc
    if not a > 0:
        raise InvalidInput("--logit-scale: A must be positive (a negative one would turn the ranking around)")
    return a, b


def run_calibrate(args: argparse.Namespace) -> int:
    import torch

    from unmask.detector.registry import config_for, file_sha256, read_checkpoint, resolve_weights
    from unmask.training.thresholds import read_predictions, report_markdown, threshold_report

    for limit in (args.max_fpr, args.max_miss):
        if not 0 <= limit < 1:
            raise InvalidInput("--max-fpr and --max-miss must be in [0, 1)")
    path = resolve_weights("", args.weights)
    data = read_predictions(args.reports)
    scale = parse_logit_scale(args.logit_scale)
    if scale is not None:
        if data.logits is None:
            raise InvalidInput("--logit-scale needs reports with raw logits (a fold's)")
        data = replace(data, logits=scale[0] * data.logits + scale[1])
    if data.weights_sha256 and data.weights_sha256 != file_sha256(path):
        # Raw logits of other weights are a fold's: the same recipe trained without the sources
        # it scored, whose calibration is handed to the model trained on every source.
        # Calibrated probabilities alone belong to the weights that made them.
        if data.logits is None:
            raise InvalidInput(f"the reports scored weights {data.weights_sha256[:12]}…, not {path}")
        print(f"calibrating {path} on the raw logits of weights {data.weights_sha256[:12]}… (a fold)")
    checkpoint = read_checkpoint(path)
    config = config_for(checkpoint, None)
    fitted, report = threshold_report(data, config, max_fpr=args.max_fpr, max_miss=args.max_miss)
    report["reports"] = [str(r) for r in args.reports]
    report["fold_logit_scale"] = list(scale) if scale is not None else None
    report["calibrated_weights_sha256"] = file_sha256(path)  # the tensors these thresholds go with
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    torch.save({**checkpoint, "unmask_model": fitted.to_dict(), "verdict_thresholds": report}, tmp)
    tmp.replace(args.out)
    (args.out.parent / f"{args.out.stem}-thresholds.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out.parent / f"{args.out.stem}-thresholds.md").write_text(report_markdown(report))
    print(report_markdown(report))
    print(f"weights: {args.out} (sha256 {file_sha256(args.out)})")
    return 0


def run_card(args: argparse.Namespace) -> int:
    from unmask.training.card import write_model_card

    report_path = args.run / "metrics.json"
    if not report_path.is_file():
        raise InvalidInput(f"{report_path} not found: pass the folder of a finished `unmask train` run")
    evaluations = []
    for item in args.evaluation:
        name, sep, folder = item.partition("=")
        if not sep or not (Path(folder) / "metrics.json").is_file():
            raise InvalidInput(f"--evaluation {item!r}: expected NAME=DIR with DIR/metrics.json")
        evaluations.append((name, Path(folder)))
    card = args.run / "MODEL_CARD.md"
    report = json.loads(report_path.read_text())
    write_model_card(card, report, args.run, loso_dir=args.loso, evaluations=evaluations)
    print(f"model card: {card}")
    return 0


def default_workers(device: str) -> int:
    """Example-making processes: most of the CPUs when a GPU waits on them, none on a CPU run."""
    from unmask.detector.predictor import pick_device

    return max(0, (os.cpu_count() or 1) - 2) if pick_device(device).type == "cuda" else 0


def run_train(args: argparse.Namespace) -> int:
    from unmask.training.fit import fit_model
    from unmask.training.train import TrainOptions

    set_threads(args.threads)
    options = TrainOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        sbi_ratio=args.sbi_ratio,
        xray_ratio=args.xray_ratio,
        dense_landmarks=args.dense_landmarks,
        balance_sources=args.balance,
        labelled_fakes=not args.sbi_only,
        source_adversary=args.source_adversary,
        init_weights=str(args.init_weights) if args.init_weights else None,
        pretrained=args.pretrained,
        workers=args.workers if args.workers is not None else default_workers(args.device),
        amp=args.amp,
        samples_per_epoch=args.samples_per_epoch,
        checkpoint_every=args.checkpoint_every,
        max_steps=args.max_steps,
        val_sources=[s for s in args.val_sources.split(",") if s],
    )
    common = dict(
        model_name=args.model,
        options=options,
        cache_dir=args.cache,
        device=args.device,
        calibrate_on=args.calibrate_on,
    )
    if args.loso:
        from unmask.training.fit import fit_loso

        results = fit_loso(args.data, args.out, sources=options.val_sources or None, **common)
        print((args.out / "LOSO.md").read_text() if results else "paused; rerun to continue")
        return 0
    weights = fit_model(args.data, args.out, resume=args.resume, **common)
    if weights is None:
        print(f"paused; continue with: unmask train ... --out {args.out} --resume")
    else:
        print(f"weights: {weights}\nmodel card: {args.out / 'MODEL_CARD.md'}")
    return 0
