"""Per-stage latency of the detector on this machine: Unmask's single-pass Grad-CAM against
the reference design (score with one forward, then pytorch-grad-cam's second forward and full
backward). Writes bench/results/detector-<device>.json with the machine it ran on.

    python bench/bench_detector.py [--threads 2] [--repeats 7] [--weights FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from unmask.detector.faces import crop_face
from unmask.detector.gradcam import GradCam
from unmask.detector.predictor import Predictor, to_model_input

ROOT = Path(__file__).resolve().parent.parent
PORTRAIT = ROOT / "tests" / "fixtures" / "labelled" / "real" / "studio__128_03.jpg"


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def reference_explain(model: torch.nn.Module, batch: torch.Tensor) -> None:
    """What the reference design does: forward to score, then GradCAM's own forward+backward."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with torch.no_grad():
        torch.sigmoid(model(batch))
    for p in model.parameters():
        p.requires_grad_(True)
    with GradCAM(model=model, target_layers=[model.block8.branch1[-1]]) as cam:
        cam(input_tensor=batch, targets=[ClassifierOutputTarget(0)] * len(batch))
    for p in model.parameters():
        p.requires_grad_(False)


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def bench_size(predictor: Predictor, side: int, repeats: int) -> dict:
    model = predictor.model.module
    image = Image.open(PORTRAIT).convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    faces = predictor.detector.detect(image)
    crop = crop_face(image, faces[0].box, predictor.config.crop_size, predictor.config.margin)
    batch = to_model_input([crop], predictor.config).to(predictor.device)
    single_pass = GradCam(model, predictor.config.target_layer)
    return {
        "mtcnn_ms": median_ms(lambda: predictor.detector.detect(image), repeats),
        "score_only_ms": median_ms(lambda: torch.inference_mode()(model)(batch), repeats),
        "score_and_gradcam_single_pass_ms": median_ms(lambda: single_pass(batch), repeats),
        "score_then_pytorch_grad_cam_ms": median_ms(lambda: reference_explain(model, batch), repeats),
        "whole_predict_with_overlays_ms": median_ms(lambda: predictor.predict(image), repeats),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    predictor = Predictor.from_settings(weights=args.weights, model_name=None, device=args.device)
    rows = {f"{side}px": bench_size(predictor, side, args.repeats) for side in (512, 1024)}
    out = {
        "model": predictor.config.name,
        "input_size": predictor.config.input_size,
        "machine": machine(),
        "repeats": args.repeats,
        "results": rows,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = ROOT / "bench" / "results" / f"detector-{args.device}.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
