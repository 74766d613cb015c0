"""Throughput of the reference design and of Unmask's batch path, on the same images in one run.

    python bench/throughput.py --device cpu|cuda --images N --size 512|1024|2048 [--quick]
    python bench/throughput.py --e2e --images N      # real jobs: API, Redis, Postgres, S3, worker

The images are JPEGs (quality 90) of one face each, pasted at a random place and scale on a
textured background, made from the portraits in tests/fixtures. Each path runs in a fresh
process (so peak memory is its own) over the same bytes:

- `reference`: the published design, one image at a time: Pillow decode,
  `MTCNN(select_largest=False, post_process=False)` -> the first face's 160 px crop -> bilinear
  256 px in [0, 1] -> InceptionResnetV1 -> sigmoid, then pytorch-grad-cam's GradCAM on
  `block8.branch1[-1]` and its `show_cam_on_image` overlay, JPEG-encoded.
- `unmask-single`: Unmask's worker path with a batch size of 1 (one job at a time).
- `unmask-batch`: the production worker path: `--batch` threads each decode one image, share the
  model through the in-process batcher (batched MTCNN, every face in one scoring + Grad-CAM pass,
  the re-encode stability pass), then draw, JPEG-encode and write their overlays. With
  `--decode device` (the default on cuda) the threads read only the JPEG headers and the
  batcher decodes the whole batch on the device in one call (nvJPEG on a GPU), shrinking it
  there for MTCNN. With `--processes P`, P such worker processes share the device, each with
  every P-th image, timed from when all have warmed up until the last is done (several
  `unmask worker` processes per GPU: MTCNN's small kernels leave a GPU idle between launches).

Unmask runs the default shipped classifier (`unmask-lite0`; `UNMASK_MODEL=unmask-irv1` for the
other); the reference runs a seeded random InceptionResnetV1 (weights do not change its
speed). Results: bench/results/throughput-<device>.json and a row per path in bench/RESULTS.md (history kept).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import append_section  # noqa: E402

PORTRAITS = ROOT / "tests" / "fixtures" / "labelled"
RESULTS_DIR = ROOT / "bench" / "results"


def make_images(n: int, size: int, seed: int = 0) -> list[bytes]:
    """n JPEGs of size x size with one face each, the same for the same arguments."""
    rng = random.Random(seed)
    portraits = [Image.open(p).convert("RGB") for p in sorted(PORTRAITS.glob("*/*.jpg"))]
    images = []
    for i in range(n):
        # A defocused backdrop: another portrait, enlarged and blurred, as behind a subject.
        backdrop = portraits[(i + 1) % len(portraits)].resize((size, size), Image.Resampling.BILINEAR)
        canvas = backdrop.filter(ImageFilter.GaussianBlur(size / 40))
        face = portraits[i % len(portraits)]
        side = int(size * rng.uniform(0.3, 0.5))
        face = face.resize((side, side), Image.Resampling.BILINEAR)
        canvas.paste(face, (rng.randrange(0, size - side), rng.randrange(0, size - side)))
        buf = io.BytesIO()
        canvas.save(buf, format="JPEG", quality=90)
        images.append(buf.getvalue())
    return images


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def gpu_peak_mb(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_reference(images: list[bytes], device: str, out: Path) -> dict:
    """The published design, one image at a time."""
    import torch
    import torch.nn.functional as F
    from facenet_pytorch import MTCNN
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from unmask.detector.registry import build_inception_resnet_v1

    torch.manual_seed(0)
    model = build_inception_resnet_v1().to(device).eval()
    mtcnn = MTCNN(select_largest=False, post_process=False, device=device)
    cam = GradCAM(model=model, target_layers=[model.block8.branch1[-1]])
    stages = dict.fromkeys(("decode", "detect", "classify_explain", "encode", "store"), 0.0)
    faces = 0

    def one(index: int, data: bytes) -> None:
        nonlocal faces
        t0 = time.perf_counter()
        image = Image.open(io.BytesIO(data)).convert("RGB")
        t1 = time.perf_counter()
        crop = mtcnn(image)
        sync(device)
        t2 = time.perf_counter()
        if crop is None:
            stages["decode"] += t1 - t0
            stages["detect"] += t2 - t1
            return
        faces += 1
        x = F.interpolate(crop.unsqueeze(0).to(device), size=(256, 256), mode="bilinear") / 255.0
        with torch.no_grad():
            torch.sigmoid(model(x)).item()
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(0)])[0]
        t3 = time.perf_counter()
        shown = show_cam_on_image(x[0].permute(1, 2, 0).cpu().numpy(), heat, use_rgb=True)
        buf = io.BytesIO()
        Image.fromarray(shown).save(buf, format="JPEG", quality=90)
        t4 = time.perf_counter()
        (out / f"ref-{index}.jpg").write_bytes(buf.getvalue())
        t5 = time.perf_counter()
        for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            stages[stage] += seconds

    one(-1, images[0])  # warm-up
    stages = dict.fromkeys(stages, 0.0)
    faces = 0
    start = time.perf_counter()
    for index, data in enumerate(images):
        one(index, data)
    elapsed = time.perf_counter() - start
    return summary("reference", len(images), faces, elapsed, stages, device, 1, "fp32")


def run_unmask(  # noqa: ANN001
    images: list[bytes], device: str, out: Path, batch: int, precision: str, decode: str, barrier=None
) -> dict:
    """Unmask's worker path: `batch` threads, one image each, sharing the model. With a barrier,
    the timed part starts when every process sharing the device has warmed up."""
    from unmask.core.settings import Settings
    from unmask.detector.predictor import Predictor
    from unmask.worker.detection import PredictorDetector

    settings = Settings()  # the worker's defaults (and UNMASK_* from the environment)
    predictor = Predictor.from_settings(
        weights=settings.weights,
        model_name=settings.model,
        device=device,
        detect_max_side=settings.detect_max_side,
        stability_check=settings.stability_check,
        precision=precision,
    )
    detector = PredictorDetector(
        predictor, max_pixels=64_000_000, batch_size=batch, batch_wait_seconds=0.05, decode=decode
    )
    model_stages: dict[str, float] = {}
    detector.timings = model_stages
    lock = threading.Lock()
    thread_stages = dict.fromkeys(("decode", "encode", "store"), 0.0)
    predict_group = detector.predict_group

    def timed_group(group: list) -> list:
        found = predict_group(group)
        sync(device)
        return found

    if detector.batcher is not None:
        detector.batcher.run = timed_group

    def one(index: int, data: bytes) -> int:
        t0 = time.perf_counter()
        decoded = detector.decode(data)
        t1 = time.perf_counter()
        if detector.batcher is not None:
            predicted = detector.batcher.submit(decoded)
        else:
            predicted = timed_group([decoded])[0]
        t2 = time.perf_counter()
        analysis = detector.finish(predicted)
        t3 = time.perf_counter()
        for i, jpeg in enumerate([analysis.overlays.image, *analysis.overlays.faces]):
            if jpeg is not None:
                (out / f"unmask-{index}-{i}.jpg").write_bytes(jpeg)
        t4 = time.perf_counter()
        with lock:
            for stage, seconds in zip(thread_stages, (t1 - t0, t3 - t2, t4 - t3)):
                thread_stages[stage] += seconds
        return sum(f.fake_probability is not None for f in analysis.result.faces)

    with ThreadPoolExecutor(max(1, batch)) as pool:
        list(pool.map(one, range(-batch, 0), images[:batch]))  # warm-up
        model_stages.clear()
        thread_stages = dict.fromkeys(thread_stages, 0.0)
        if barrier is not None:
            barrier.wait()
        began, start = time.time(), time.perf_counter()
        faces = sum(pool.map(one, range(len(images)), images))
        elapsed = time.perf_counter() - start
    # Thread stages overlap each other and the model; reported as time per image in that stage.
    stages = {
        "decode": thread_stages["decode"],
        **model_stages,
        "encode": thread_stages["encode"],
        "store": thread_stages["store"],
    }
    name = "unmask-batch" if batch > 1 else "unmask-single"
    result = summary(name, len(images), faces, elapsed, stages, device, batch, predictor.precision)
    result["decode"] = "device" if detector.decode_on_device else "pillow"
    result["window"] = [began, began + elapsed]
    return result


def summary(
    name: str, n: int, faces: int, elapsed: float, stages: dict, device: str, batch: int, precision: str
) -> dict:
    return {
        "path": name,
        "batch": batch,
        "precision": precision,
        "images": n,
        "faces": faces,
        "seconds": round(elapsed, 2),
        "images_per_s": round(n / elapsed, 2),
        "faces_per_s": round(faces / elapsed, 2),
        "stage_ms_per_image": {k: round(v * 1000 / n, 1) for k, v in stages.items()},
        "peak_rss_mb": peak_rss_mb(),
        "gpu_peak_mb": gpu_peak_mb(device),
    }


@dataclass(frozen=True)
class Setup:
    """How one path runs: device, images per batch, torch's CPU threads, Unmask's options."""

    device: str
    batch: int = 1
    threads: int | None = None
    precision: str = "auto"
    decode: str = "auto"


def child(path: str, images: list[bytes], setup: Setup, queue, barrier=None) -> None:  # noqa: ANN001
    import torch

    if setup.threads:
        torch.set_num_threads(setup.threads)
    with tempfile.TemporaryDirectory(prefix="unmask-bench-") as tmp:
        if path == "reference":
            queue.put(run_reference(images, setup.device, Path(tmp)))
        else:
            queue.put(
                run_unmask(
                    images, setup.device, Path(tmp), setup.batch, setup.precision, setup.decode, barrier
                )
            )


def in_process(path: str, images: list[bytes], setup: Setup) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(path, images, setup, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def in_processes(images: list[bytes], setup: Setup, processes: int) -> dict:
    """The batch path in `processes` worker processes sharing the device, each with its share
    of the images, timed from the moment all have warmed up to the moment the last is done:
    what several `unmask worker` processes on one GPU serve together."""
    if processes <= 1:
        return in_process("unmask-batch", images, setup)
    if setup.threads is None and not setup.device.startswith("cuda"):  # cores shared out, not oversubscribed
        setup = replace(setup, threads=max(1, (os.cpu_count() or 1) // processes))
    ctx = mp.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(processes)
    procs = [
        ctx.Process(
            target=child,
            args=("unmask-batch", images[i::processes], setup, queue, barrier),
        )
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    parts = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    began, ended = min(p["window"][0] for p in parts), max(p["window"][1] for p in parts)
    faces = sum(p["faces"] for p in parts)
    stage_names = parts[0]["stage_ms_per_image"]
    gpu = [p["gpu_peak_mb"] for p in parts if p["gpu_peak_mb"] is not None]
    return {
        **parts[0],
        "path": f"unmask-batch x{processes} processes",
        "processes": processes,
        "images": len(images),
        "faces": faces,
        "seconds": round(ended - began, 2),
        "images_per_s": round(len(images) / (ended - began), 2),
        "faces_per_s": round(faces / (ended - began), 2),
        # the mean of the processes' own per-image figures
        "stage_ms_per_image": {
            k: round(sum(p["stage_ms_per_image"][k] for p in parts) / processes, 1) for k in stage_names
        },
        "peak_rss_mb": round(sum(p["peak_rss_mb"] for p in parts), 1),  # all processes together
        "gpu_peak_mb": round(sum(gpu), 1) if gpu else None,
        "window": [began, ended],
    }


def machine(device: str) -> dict:
    import torch

    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if device.startswith("cuda"):
        info["card"] = torch.cuda.get_device_name(0)
    return info


def append_markdown(report: dict) -> None:
    m = report["machine"]
    where = m.get("card") or f"{m['cpus']}-core {m['processor']} CPU"
    quick = " (quick)" if report["quick"] else ""
    rows = [
        (
            r["path"] + (", JPEGs decoded on the device" if r.get("decode") == "device" else ""),
            r["batch"],
            r.get("precision", "fp32"),
            r["images_per_s"],
            r["faces_per_s"],
            ", ".join(f"{k} {v}" for k, v in r["stage_ms_per_image"].items()),
            r["peak_rss_mb"],
            r["gpu_peak_mb"] if r["gpu_peak_mb"] is not None else "–",
        )
        for r in report["runs"]
    ]
    append_section(
        f"{m['date']} · {where} · {report['size']} px · {report['images']} images{quick}",
        f"`{report['command']}`",
        ["path", "batch", "precision", "images/s", "faces/s", "stage ms per image", "peak RSS MB", "GPU MB"],
        rows,
        f"**ratio** (Unmask batch ÷ reference, images/s): **{report['ratio']}×**",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=1024, choices=[512, 1024, 2048])
    parser.add_argument("--batch", type=int, default=None, help="images per batch (default: 8 CPU, 32 GPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--precision", default="auto", choices=("auto", "fp32", "bf16"), help="Unmask's classifier arithmetic"
    )
    parser.add_argument(
        "--decode",
        default="auto",
        choices=("auto", "pillow", "device"),
        help="where Unmask decodes JPEGs: auto is the GPU (nvJPEG) on cuda, Pillow on cpu",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes sharing the device on the batch path (MTCNN is launch-bound on a GPU)",
    )
    parser.add_argument("--quick", action="store_true", help="12 images, for a check under a minute")
    parser.add_argument("--skip-single", action="store_true", help="leave out the one-at-a-time Unmask path")
    parser.add_argument("--e2e", action="store_true", help="real jobs through API, broker and worker")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.e2e:
        from bench.end_to_end import main as e2e

        return e2e(args)
    n = 12 if args.quick else args.images
    batch = args.batch or (32 if args.device.startswith("cuda") else 8)
    images = make_images(n, args.size)
    unmask = Setup(args.device, 1, args.threads, args.precision, args.decode)
    runs = [in_process("reference", images, Setup(args.device, 1, args.threads))]
    print(json.dumps(runs[-1]), flush=True)
    if not args.skip_single:
        runs.append(in_process("unmask-single", images, unmask))
        print(json.dumps(runs[-1]), flush=True)
    runs.append(in_processes(images, replace(unmask, batch=batch), args.processes))
    print(json.dumps(runs[-1]), flush=True)
    report = {
        "command": "python bench/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(args.device),
        "size": args.size,
        "images": n,
        "quick": args.quick,
        "runs": runs,
        "ratio": round(runs[-1]["images_per_s"] / runs[0]["images_per_s"], 2),
    }
    print(json.dumps({"ratio": report["ratio"]}))
    if not args.no_write:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        device = "cuda" if args.device.startswith("cuda") else "cpu"
        (RESULTS_DIR / f"throughput-{device}.json").write_text(json.dumps(report, indent=2) + "\n")
        append_markdown(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
