"""Training: cached face crops, source-balanced sampling, self-blended fakes, resumable."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from unmask.detector.config import ModelConfig
from unmask.detector.predictor import native_bf16, normalise
from unmask.detector.registry import ARCHITECTURES, PRETRAINED, load_state, read_checkpoint
from unmask.training.adversary import SourceAdversary, adversary_strength
from unmask.training.augment import augment
from unmask.training.dataset import CropSet
from unmask.training.sbi import nearest_partner, self_blend, xray_blend

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    # Defaults are the recipe that measured best on held-out sources (docs/evaluation/recipes.md).
    sbi_ratio: float = 0.0  # chance a sampled real crop becomes a self-blended fake
    xray_ratio: float = 0.0  # chance it becomes a Face X-ray blend with another real face
    dense_landmarks: bool = False  # 68-point (dlib) landmarks for blend masks instead of MTCNN's 5
    labelled_fakes: bool = True  # False: train on real crops and their self-blended fakes only
    source_adversary: float = 0.0  # weight of the class-conditional source adversary; 0 = off
    balance_sources: bool = False
    samples_per_epoch: int | None = None
    real_share: float = 2 / 3  # sampling mass of real crops (before some become SBI fakes)
    val_limit: int | None = 1500  # crops scored after each epoch; the final report uses all
    checkpoint_every: int = 50  # steps
    max_steps: int | None = None  # stop (resumably) after this many steps in this call
    val_sources: list[str] = field(default_factory=list)
    init_weights: str | None = None  # start from these weights (same architecture) instead of random
    workers: int = 0  # DataLoader processes making augmented examples; 0: in the training process
    amp: bool = True  # bf16 autocast where the device has native bf16 (CUDA 8.0+, AMX CPUs)
    channels_last: bool = True  # NHWC memory layout on CUDA, and with bf16 on the CPU
    pretrained: bool = True  # without init_weights: start from published weights where the arch has them


def sample_weights(
    labels: np.ndarray, sources: np.ndarray, balance: bool, real_share: float = 0.5
) -> np.ndarray:
    """Sampling probabilities. Balanced: each class gets its share, split equally among its
    sources, so no single collection dominates what the model sees."""
    if not balance:
        return np.full(len(labels), 1.0 / len(labels))
    weights = np.zeros(len(labels))
    for label, share in ((0, real_share), (1, 1.0 - real_share)):
        in_class = labels == label
        groups = np.unique(sources[in_class])
        for source in groups:
            members = in_class & (sources == source)
            weights[members] = share / len(groups) / members.sum()
    return weights / weights.sum()


def positive_weight(weights: np.ndarray, labels: np.ndarray, sbi_ratio: float) -> float:
    """BCE pos_weight that evens out real and fake once SBI has turned some reals fake."""
    p_real = float(weights[labels == 0].sum()) * (1 - sbi_ratio)
    p_fake = 1.0 - p_real
    return p_real / p_fake if p_real > 0 and p_fake > 0 else 1.0


def epoch_order(n_samples: int, weights: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([seed, epoch])
    return rng.choice(len(weights), size=n_samples, replace=True, p=weights)


def make_example(
    data: CropSet, index: int, rng: np.random.Generator, sbi_ratio: float, xray_ratio: float = 0.0
) -> tuple[np.ndarray, int]:
    """One augmented training crop; a real one may first become a self-blended fake, or a
    Face X-ray blend with another real face."""
    crop, label = data.crops[index], int(data.labels[index])
    if label == 0 and sbi_ratio + xray_ratio > 0:
        roll = rng.random()
        if roll < sbi_ratio:
            crop, label = self_blend(crop, data.landmarks[index], rng), 1
        elif roll < sbi_ratio + xray_ratio:
            reals = np.flatnonzero(data.labels == 0)
            if len(reals) > 1:
                partner = nearest_partner(index, data.landmarks, reals, rng)
                source, points = data.crops[partner], data.landmarks[partner]
                crop, label = xray_blend(crop, data.landmarks[index], source, points, rng), 1
    return augment(crop, rng), label


class Trainer:
    """Owns model, optimiser, schedule and the run folder's checkpoint."""

    def __init__(
        self, config: ModelConfig, train: CropSet, run_dir: Path, options: TrainOptions, device: torch.device
    ) -> None:
        if options.dense_landmarks and options.sbi_ratio + options.xray_ratio > 0:
            dense = train.dense
            if dense is None:
                from unmask.training.landmarks import Dense68

                dense = Dense68(config.margin).many(train.crops, cache=run_dir / "landmarks68.npy")
            train = replace(train, landmarks=dense)
        self.config, self.data, self.run_dir, self.opt = config, train, run_dir, options
        self.device = device
        torch.manual_seed(options.seed)
        self.model: nn.Module = ARCHITECTURES[config.arch]()
        if options.init_weights:  # fine-tune: start from these weights instead of random
            path = Path(options.init_weights)
            load_state(self.model, read_checkpoint(path), path, config.arch)
        elif options.pretrained and config.arch in PRETRAINED:
            sha = PRETRAINED[config.arch](self.model)
            log.info("%s starts from published weights (sha256 %s)", config.arch, sha[:12])
        self.model.to(device)
        self.bf16 = options.amp and native_bf16(device)
        self.nhwc = options.channels_last and (device.type == "cuda" or self.bf16)
        if self.nhwc:
            self.model.to(memory_format=torch.channels_last)
        self.images_per_second = 0.0
        self.source_names = sorted(set(train.sources.tolist()))
        self.source_index = np.searchsorted(self.source_names, train.sources)
        self.adversary: SourceAdversary | None = None
        self._embedding: torch.Tensor | None = None
        params = list(self.model.parameters())
        if options.source_adversary > 0:
            self.adversary = self._attach_adversary()
            params += list(self.adversary.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay)
        self.weights = sample_weights(
            train.labels, train.sources, options.balance_sources, options.real_share
        )
        self.per_epoch = options.samples_per_epoch or len(train.labels)
        self.steps_per_epoch = max(1, self.per_epoch // options.batch_size)
        self.epoch, self.step = 0, 0
        self.history: list[dict] = []
        pos = positive_weight(self.weights, train.labels, options.sbi_ratio + options.xray_ratio)
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos, device=device))

    def _attach_adversary(self) -> SourceAdversary:
        """Read the embedding (the input of the `logits` layer) on every forward pass."""
        try:
            head = self.model.get_submodule("logits")
        except AttributeError as exc:
            raise ValueError(f"{self.config.arch} has no `logits` layer for the source adversary") from exc
        if not isinstance(head, nn.Linear):
            raise ValueError(f"{self.config.arch}: `logits` is not a linear layer")

        def keep(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            self._embedding = inputs[0]

        head.register_forward_pre_hook(keep)
        return SourceAdversary(head.in_features, len(self.source_names)).to(self.device)

    @property
    def total_steps(self) -> int:
        return self.opt.epochs * self.steps_per_epoch

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def lr_at(self, global_step: int) -> float:
        total = self.total_steps
        warmup = min(100, total // 10 + 1)
        if global_step < warmup:
            return self.opt.lr * (global_step + 1) / warmup
        progress = (global_step - warmup) / max(1, total - warmup)
        return self.opt.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    def save(self) -> None:
        state = {
            "model_state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "adversary": self.adversary.state_dict() if self.adversary is not None else None,
            "options": asdict(self.opt),
            "config": self.config.to_dict(),
        }
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)

    def resume(self) -> bool:
        if not self.checkpoint_path.exists():
            return False
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model_state_dict"])
        if self.adversary is not None:
            self.adversary.load_state_dict(state["adversary"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step, self.history = state["epoch"], state["step"], state["history"]
        log.info("resumed at epoch %d step %d", self.epoch, self.step)
        return True

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"

    def train_step(
        self, crops: torch.Tensor, labels: torch.Tensor, indices: np.ndarray, global_step: int
    ) -> float:
        """One optimiser step on a batch of augmented uint8 crops (N x S x S x 3)."""
        batch = normalise(crops.to(self.device, non_blocking=True), self.config)
        if self.nhwc:
            batch = batch.contiguous(memory_format=torch.channels_last)
        target = labels.to(self.device, dtype=torch.float32, non_blocking=True)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(global_step)
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(batch).reshape(-1).float()
        loss = self.loss_fn(logits, target)
        if self.adversary is not None and self._embedding is not None:
            self.adversary.train()
            sources = torch.as_tensor(self.source_index[indices], device=self.device)
            strength = adversary_strength(global_step / max(1, self.total_steps))
            domain = self.adversary.loss(self._embedding.float(), target.long(), sources, strength)
            loss = loss + self.opt.source_adversary * domain
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def batches(self, order: np.ndarray) -> DataLoader:
        """The rest of this epoch's batches, made in `workers` processes when asked."""
        steps = EpochSteps(self.data, order, self.opt, self.epoch * self.steps_per_epoch)
        return DataLoader(
            steps,
            batch_size=None,
            sampler=range(self.step, self.steps_per_epoch),
            num_workers=self.opt.workers,
            pin_memory=self.on_cuda,
            prefetch_factor=4 if self.opt.workers else None,
        )

    def run_epoch(self, budget: int | None) -> tuple[bool, int]:
        """Train the rest of the current epoch; returns (finished, steps taken)."""
        order = epoch_order(self.per_epoch, self.weights, self.opt.seed, self.epoch)
        bs, taken, losses = self.opt.batch_size, 0, []
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=self.step,
            desc=f"epoch {self.epoch + 1}",
            unit="step",
            mininterval=5.0,
        )
        started, images = time.monotonic(), 0
        for crops, labels in self.batches(order):
            if budget is not None and taken >= budget:
                bar.close()
                return False, taken
            global_step = self.epoch * self.steps_per_epoch + self.step
            torch.manual_seed(self.opt.seed * 1_000_003 + global_step)
            indices = order[self.step * bs : (self.step + 1) * bs]
            losses.append(self.train_step(crops, labels, indices, global_step))
            self.step, taken, images = self.step + 1, taken + 1, images + len(labels)
            bar.update(1)
            rate = images / max(time.monotonic() - started, 1e-9)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", img_s=f"{rate:.0f}")
            if self.step % self.opt.checkpoint_every == 0:
                self.save()
        bar.close()
        self.images_per_second = round(images / max(time.monotonic() - started, 1e-9), 1)
        return True, taken


class EpochSteps(Dataset):
    """Step k of an epoch: its augmented examples (uint8 crops and labels). Each example is
    seeded by (seed, global step, position), so any worker makes the same batch."""

    def __init__(self, data: CropSet, order: np.ndarray, options: TrainOptions, first_step: int) -> None:
        self.data, self.order, self.opt, self.first_step = data, order, options, first_step

    def __len__(self) -> int:
        return len(self.order) // self.opt.batch_size

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        bs, global_step = self.opt.batch_size, self.first_step + step
        crops, labels = [], []
        for i, index in enumerate(self.order[step * bs : (step + 1) * bs]):
            rng = np.random.default_rng([self.opt.seed, global_step, i])
            crop, label = make_example(self.data, int(index), rng, self.opt.sbi_ratio, self.opt.xray_ratio)
            crops.append(crop)
            labels.append(label)
        return torch.from_numpy(np.stack(crops)), torch.tensor(labels)


def predict_logits(
    model: nn.Module, config: ModelConfig, crops: np.ndarray, device: torch.device, batch_size: int = 64
) -> np.ndarray:
    """Raw logits for un-augmented crops, in eval mode."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(crops), batch_size):
            batch = normalise(torch.from_numpy(crops[start : start + batch_size]).to(device), config)
            out.append(model(batch).reshape(-1).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def train(
    config: ModelConfig,
    train_set: CropSet,
    val_set: CropSet,
    run_dir: Path,
    options: TrainOptions,
    device: torch.device,
    *,
    resume: bool = False,
    on_epoch=None,
) -> tuple[nn.Module, bool]:
    """Train until options.epochs are done or max_steps is spent; returns (model, finished)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, train_set, run_dir, options, device)
    if resume:
        trainer.resume()
    elif trainer.checkpoint_path.exists():
        raise FileExistsError(f"{trainer.checkpoint_path} exists: pass --resume or a new --out")
    budget = options.max_steps
    while trainer.epoch < options.epochs:
        started = time.monotonic()
        done, taken = trainer.run_epoch(budget)
        if budget is not None:
            budget -= taken
        if not done:
            trainer.save()
            return trainer.model, False
        record = {
            "epoch": trainer.epoch + 1,
            "seconds": round(time.monotonic() - started, 1),
            "train_images_per_second": trainer.images_per_second,
        }
        if on_epoch is not None:
            rows = epoch_validation_rows(len(val_set.labels), options.val_limit, options.seed)
            logits = predict_logits(trainer.model, config, val_set.crops[rows], device)
            record.update(on_epoch(logits, rows))
        trainer.history.append(record)
        (run_dir / "history.json").write_text(json.dumps(trainer.history, indent=2))
        trainer.epoch, trainer.step = trainer.epoch + 1, 0
        trainer.save()
    return trainer.model, True


def epoch_validation_rows(n: int, limit: int | None, seed: int) -> np.ndarray:
    """A fixed random subset of validation rows, so per-epoch checks stay cheap."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def split_by_sources(
    data: CropSet, val_sources: list[str], holdout: float, seed: int
) -> tuple[CropSet, CropSet, np.ndarray]:
    """Held-out sources go wholly to validation, plus a random share of the rest.

    Returns train, validation and, for validation rows, whether their source was held out.
    """
    held = np.isin(data.sources, val_sources)
    rng = np.random.default_rng(seed)
    inside = (~held) & (rng.random(len(held)) < holdout)
    val_mask = held | inside
    return data.subset(~val_mask), data.subset(val_mask), held[val_mask]
