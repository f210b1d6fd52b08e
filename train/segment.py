"""Train the U-Net-BN segmenter (thesis 4.4), seed-locked.

``train_segmenter(cfg)`` writes into ``cfg.out``:

    checkpoint.pt         weights + everything export needs (see checkpoint.py)
    config.json           the resolved SegmentConfig (feed it back with --config)
    metrics.json          per-epoch train loss, final validation metrics, timing
    val_prediction.png    image | truth | prediction for a few validation samples
    seed_search.json      every trial, when --seed-search K was used

Determinism: the seed sets ``torch.manual_seed`` (weight init) and a
``torch.Generator`` for the data order; deterministic algorithms are on and
the embedded data is drawn from its own fixed ``data_seed``. The same config
and seed on the same machine (and thread count) give bit-identical weights.

Distributed: run the same command under ``torchrun --nproc_per_node=N``; the
RANK/WORLD_SIZE environment switches on DistributedDataParallel (gloo on CPU,
nccl on CUDA) with a seeded DistributedSampler. ``batch_size`` is per process.
Only rank 0 evaluates, shows progress and writes files.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from seedlock.core.errors import UserError
from seedlock.core.imaging import colorize, write_png
from seedlock.core.metrics import (
    IGNORE_INDEX,
    confusion_matrix,
    element_counts,
    element_counts_from_confusion,
    element_scores,
    scores_from_confusion,
)
from seedlock.core.rng import SeedStream
from seedlock.core.segmentation import SegmentationSpec
from seedlock.train.bi_activation import ACTIVATIONS
from seedlock.train.checkpoint import CHECKPOINT_NAME, save_checkpoint
from seedlock.train.config import ConfigFile, is_int, need
from seedlock.train.data.segmentation import SegmentationDataset, build_sources
from seedlock.train.determinism import deterministic
from seedlock.train.losses import LOSSES, SegmentationLoss
from seedlock.train.unet import NORMS, UNet, UNetConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SCENE_DEFAULTS = {"n_train": 1024, "n_val": 32}
SEED_SEARCH_STREAM = 0x5EED  # SeedStream stream id for deriving trial seeds
DEVICES = ("cpu", "cuda", "auto")


@dataclass
class SegmentConfig(ConfigFile):
    """Every option of a segmentation run. Field names are the CLI flags (``_`` -> ``-``)
    and the keys of a ``--config`` YAML/JSON file.

    The defaults are the calibrated demo: about 2-3 minutes on 2 CPU cores
    (see :func:`demo_config`). Thesis settings kept: Adam, lr 1e-3, batch 4,
    seed 777, focal loss with L1 0.5 / L2 0, batch norm on every layer.
    """

    KIND = "segment"

    # data
    data: str = "scenes"  # "scenes" (embedded) or a VOC/ATR folder
    data_seed: int = 0  # seed of the embedded scenes; fixed so seeds only change training
    size: int = 96  # square input side; a multiple of 2**depth
    n_train: int | None = None  # scenes: 1024; folder: all (or a cap)
    n_val: int | None = None  # scenes: 32; folder: all (or a cap)
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    # model
    width: int = 16
    depth: int = 3
    activation: str = "relu"
    alpha: float = 1.0
    norm: str = "batch"
    groups: int = 4
    # loss
    loss: str = "focal"
    gamma: float = 2.0
    focal_alpha: list[float] | None = None
    l1: float = 0.5
    l2: float = 0.0
    exp_reg: float = 0.0
    # optimization
    lr: float = 1e-3
    batch_size: int = 4
    epochs: int = 5
    steps: int | None = None  # total optimizer steps; overrides epochs when set
    seed: int = 777
    seed_search: int = 0  # K > 0: K short trials, keep the best seed
    search_steps: int | None = None  # steps per trial (default: a fifth of the run)
    # run
    out: str = "runs/segment"
    threads: int | None = None
    device: str = "cpu"
    progress: bool = True

    # -- (de)serialization ----------------------------------------------
    def validate(self) -> None:
        """Raise :class:`UserError` naming the first bad option."""
        for name in ("size", "width", "depth", "batch_size", "epochs", "groups"):
            v = getattr(self, name)
            need(is_int(v) and v >= 1, f"{name} must be a positive integer, got {v!r}")
        for name in ("n_train", "n_val", "steps", "search_steps", "threads"):
            v = getattr(self, name)
            need(v is None or (is_int(v) and v >= 1), f"{name} must be a positive integer, got {v!r}")
        for name in ("seed", "data_seed", "seed_search"):
            v = getattr(self, name)
            need(is_int(v) and v >= 0, f"{name} must be a non-negative integer, got {v!r}")
        need(self.depth <= 8, f"depth {self.depth} is too deep (at most 8)")
        need(self.size % 2**self.depth == 0, f"size {self.size} must be a multiple of 2**depth = {2**self.depth}")
        need(self.activation in ACTIVATIONS, f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        need(self.norm in NORMS, f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        need(self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        for name in ("lr", "alpha"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and math.isfinite(v) and v > 0, f"{name} must be a positive number, got {v!r}")
        for name in ("gamma", "l1", "l2", "exp_reg"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0, f"{name} must be a number >= 0, got {v!r}")
        need(len(self.mean) == 3 and len(self.std) == 3, "mean and std need 3 values (R, G, B)")
        need(all(s > 0 for s in self.std), f"std values must be > 0, got {self.std}")
        need(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        try:
            self.model_config(2)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    def model_config(self, num_classes: int) -> UNetConfig:
        return UNetConfig(
            num_classes=num_classes, in_channels=3, width=self.width, depth=self.depth,
            activation=self.activation, alpha=float(self.alpha), norm=self.norm, groups=self.groups,
        )  # fmt: skip

    def make_loss(self) -> SegmentationLoss:
        return SegmentationLoss(
            self.loss, gamma=self.gamma, l1=self.l1, l2=self.l2, exp_reg=self.exp_reg,
            alpha=self.focal_alpha, ignore_index=IGNORE_INDEX,
        )  # fmt: skip

    def preprocess(self) -> dict[str, Any]:
        return {"size": self.size, "mean": list(map(float, self.mean)), "std": list(map(float, self.std)), "divisor": 2**self.depth}


def demo_config(out: str = "runs/segment", **overrides: Any) -> SegmentConfig:
    """The calibrated demo run (the :class:`SegmentConfig` defaults): 1024 scenes of
    96 px, U-Net-BN width 16 depth 3 (0.48 M parameters), focal + L1 0.5, 5 epochs
    of batch 4 = 1280 Adam steps. About 0.13 s of CPU per step on one core, so
    2-3 minutes on 2 cores; validation mean IoU (background excluded) ~0.7."""
    return SegmentConfig(out=out, **overrides)


# --------------------------------------------------------------------------- runtime


@dataclass
class _Dist:
    """Process-group facts from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owned: bool = False

    @classmethod
    def from_env(cls) -> "_Dist":
        ws = int(os.environ.get("WORLD_SIZE", "1"))
        if ws <= 1:
            return cls()
        return cls(int(os.environ.get("RANK", "0")), ws, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def setup(self, device: torch.device) -> None:
        if self.enabled and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            self.owned = True

    def teardown(self) -> None:
        if self.owned and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
            self.owned = False


def _device(cfg: SegmentConfig, d: _Dist) -> torch.device:
    want = cfg.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device cuda requested but no CUDA GPU is available (use --device cpu)")
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


# --------------------------------------------------------------------------- training


@dataclass
class _Fit:
    model: UNet
    history: list[dict[str, Any]]
    steps: int
    seconds: float


def _fit(
    cfg: SegmentConfig,
    seed: int,
    steps: int | None,
    train_ds: SegmentationDataset,
    num_classes: int,
    d: _Dist,
    device: torch.device,
    desc: str,
) -> _Fit:
    """One training run from scratch with ``seed``: ``steps`` optimizer steps (None: cfg.epochs epochs)."""
    torch.manual_seed(seed)  # weight init
    model = UNet(cfg.model_config(num_classes)).to(device)
    net: nn.Module = model
    if d.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = cfg.make_loss().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    if d.enabled:
        sampler = DistributedSampler(train_ds, num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=seed, drop_last=True)
        per_rank = len(sampler)
    else:
        sampler = RandomSampler(train_ds, generator=torch.Generator().manual_seed(seed))
        per_rank = len(train_ds)
    if per_rank < 1:
        raise UserError(f"{len(train_ds)} training samples cannot feed {d.world_size} processes")
    # Equal batches keep BatchNorm statistics well defined (a batch of one 1x1 map has no variance).
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, drop_last=per_rank >= cfg.batch_size, num_workers=0)
    total = steps if steps is not None else cfg.epochs * len(loader)

    model.train()
    history: list[dict[str, Any]] = []
    step, epoch = 0, 0
    start = time.perf_counter()
    bar = tqdm(total=total, desc=desc, unit="step", disable=not (cfg.progress and d.main), file=sys.stderr, dynamic_ncols=True)
    while step < total:
        if d.enabled:
            sampler.set_epoch(epoch)
        sums = torch.zeros(4, dtype=torch.float64)  # loss sum, batches, correct pixels, valid pixels
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = net(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            with torch.no_grad():
                valid = y != IGNORE_INDEX
                correct = ((logits.argmax(1) == y) & valid).sum().item()
                n_valid = valid.sum().item()
            sums += torch.tensor([loss_fn.terms["total"], 1, correct, n_valid], dtype=torch.float64)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_fn.terms['total']:.4f}", acc=f"{correct / max(n_valid, 1):.3f}", refresh=False)
            if step >= total:
                break
        epoch += 1
        if d.enabled:
            dist.all_reduce(sums)
        history.append({
            "epoch": epoch,
            "steps": step,
            "train_loss": float(sums[0] / max(sums[1], 1)),
            "train_pixel_accuracy": float(sums[2] / max(sums[3], 1)),
        })  # fmt: skip
    bar.close()
    return _Fit(model, history, step, time.perf_counter() - start)


def evaluate(
    model: nn.Module,
    loader: Any,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    element_threshold: float | None = None,
) -> dict[str, Any]:
    """Validation metrics (:mod:`seedlock.core.metrics`) of ``model`` over ``(x, y)`` batches.

    Runs in eval mode (BN running statistics) and restores the model's mode.
    With ``element_threshold`` the result also holds ``"elements"``: the
    Keras-style reading over (pixel, class) elements of the softmax
    (:func:`~seedlock.core.metrics.element_scores`), which the thesis's
    tables appear to use, and ``"elements_argmax"``, the same over the
    argmax one-hot.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    elements = np.zeros(4, dtype=np.int64)
    with torch.no_grad():
        for x, y in loader:
            logits = model(x.to(device))
            pred = logits.argmax(1).cpu().numpy()
            cm += confusion_matrix(pred, y.numpy(), num_classes, IGNORE_INDEX)
            if element_threshold is not None:
                prob = torch.softmax(logits.float(), dim=1).cpu().numpy()
                elements += element_counts(prob, y.numpy(), element_threshold, IGNORE_INDEX)
    model.train(was_training)
    scores = scores_from_confusion(cm, class_names)
    if element_threshold is not None:
        scores["elements"] = {"threshold": float(element_threshold), **element_scores(elements)}
        scores["elements_argmax"] = element_scores(element_counts_from_confusion(cm))
    return scores


def predict_masks(model: nn.Module, images: np.ndarray, preprocess: dict[str, Any]) -> np.ndarray:
    """Class masks (argmax) for RGB uint8 ``(H, W, 3)`` or ``(N, H, W, 3)`` images of any size.

    Applies the serving pre-processing (letterbox to ``preprocess["size"]``,
    then normalize) and maps each mask back to its image's ``(H, W)``.
    Returns uint8 ``(H, W)`` or ``(N, H, W)``.
    """
    single = images.ndim == 3
    spec = SegmentationSpec(int(preprocess["size"]), tuple(preprocess["mean"]), tuple(preprocess["std"]),
                            tuple(str(i) for i in range(getattr(model, "module", model).cfg.num_classes)))  # fmt: skip
    x, boxes = spec.preprocess(images)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x).to(device)).cpu().numpy()
    model.train(was_training)
    masks = np.stack(spec.postprocess(logits, boxes))
    return masks[0] if single else masks


def _seed_trials(seed: int, k: int) -> list[int]:
    """The base seed first, then k-1 seeds drawn from ``SeedStream(seed, SEED_SEARCH_STREAM)``."""
    if k <= 1:
        return [seed][:k]
    drawn = SeedStream(seed, SEED_SEARCH_STREAM).integers(0, 2**31 - 1, (k - 1,))
    return [seed] + [int(s) for s in drawn]


def _broadcast(value: Any, d: _Dist) -> Any:
    if not d.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _colour_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    out = colorize(np.where(mask == IGNORE_INDEX, 0, mask), num_classes)
    out[mask == IGNORE_INDEX] = 255  # ignore -> white
    return out


def save_prediction_panel(path: Path, model: nn.Module, dataset: SegmentationDataset, preprocess: dict[str, Any], rows: int = 4) -> None:
    """``image | truth | prediction`` for the first ``rows`` samples, stacked vertically."""
    n = len(dataset.labels)
    picks = [dataset.raw(i) for i in range(min(rows, len(dataset)))]
    if not picks:
        return
    preds = predict_masks(model, np.stack([img for img, _ in picks]), preprocess)
    gap = np.full((picks[0][0].shape[0], 2, 3), 255, np.uint8)
    lines = [np.concatenate([img, gap, _colour_mask(mask, n), gap, _colour_mask(pred, n)], 1) for (img, mask), pred in zip(picks, preds)]
    sep = np.full((2, lines[0].shape[1], 3), 255, np.uint8)
    panel = lines[0]
    for line in lines[1:]:
        panel = np.concatenate([panel, sep, line], 0)
    write_png(path, panel)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)


def resolve(cfg: SegmentConfig) -> SegmentConfig:
    """Fill data-dependent defaults (sample counts) so config.json records what ran."""
    out = SegmentConfig.from_dict(cfg.to_dict())
    if out.data == "scenes":
        out.n_train = out.n_train or SCENE_DEFAULTS["n_train"]
        out.n_val = out.n_val or SCENE_DEFAULTS["n_val"]
    out.mean = [float(v) for v in out.mean]
    out.std = [float(v) for v in out.std]
    return out


def train_segmenter(cfg: SegmentConfig) -> Path:
    """Train (optionally after a seed search) and write the run folder; returns ``Path(cfg.out)``."""
    cfg.validate()
    cfg = resolve(cfg)
    d = _Dist.from_env()
    device = _device(cfg, d)
    run_dir = Path(cfg.out)
    t0 = time.perf_counter()
    with deterministic(cfg.threads, device):
        d.setup(device)
        try:
            if d.main:
                run_dir.mkdir(parents=True, exist_ok=True)
                _write_json(run_dir / "config.json", cfg.to_dict())
            train_src, val_src = build_sources(cfg.data, cfg.size, cfg.n_train or 0, cfg.n_val or 0, cfg.data_seed)
            folder = cfg.data != "scenes"
            train_ds = SegmentationDataset(train_src, cfg.mean, cfg.std, cache=not folder)
            val_ds = SegmentationDataset(val_src, cfg.mean, cfg.std, cache=not folder)
            labels = train_ds.labels
            num_classes = len(labels)
            val_loader = DataLoader(val_ds, batch_size=max(cfg.batch_size, 8), shuffle=False, num_workers=0)
            data_seconds = time.perf_counter() - t0

            seed, search = cfg.seed, None
            if cfg.seed_search > 0:
                search = _seed_search(cfg, train_ds, val_loader, labels, d, device)
                seed = search["winner"]["seed"]
                if d.main:
                    _write_json(run_dir / "seed_search.json", search)

            fit = _fit(cfg, seed, cfg.steps, train_ds, num_classes, d, device, desc=f"train seed {seed}")
            if d.main:
                t_eval = time.perf_counter()
                val = evaluate(fit.model, val_loader, num_classes, labels, device)
                eval_seconds = time.perf_counter() - t_eval
                preprocess = cfg.preprocess()
                metrics = {
                    "task": "segmentation",
                    "seed": seed,
                    "world_size": d.world_size,
                    "num_classes": num_classes,
                    "labels": labels,
                    "n_train": len(train_ds),
                    "n_val": len(val_ds),
                    "steps": fit.steps,
                    "epochs": fit.history,
                    "val": val,
                    "timing": {
                        "data_seconds": round(data_seconds, 3),
                        "train_seconds": round(fit.seconds, 3),
                        "eval_seconds": round(eval_seconds, 3),
                        "total_seconds": round(time.perf_counter() - t0, 3),
                        "images_per_second": round(fit.steps * cfg.batch_size * d.world_size / max(fit.seconds, 1e-9), 2),
                        "threads": torch.get_num_threads(),
                        "device": str(device),
                    },
                }
                if search is not None:
                    metrics["seed_search"] = {"base_seed": cfg.seed, "winner": search["winner"]}
                save_checkpoint(
                    run_dir / CHECKPOINT_NAME, task="segmentation", model=fit.model,
                    model_config=fit.model.cfg.to_dict(), config=cfg.to_dict(), labels=labels,
                    metrics=val, seed=seed, preprocess=preprocess,
                )  # fmt: skip
                _write_json(run_dir / "metrics.json", metrics)
                save_prediction_panel(run_dir / "val_prediction.png", fit.model, val_ds, preprocess)
        finally:
            d.teardown()
    return run_dir


def _seed_search(
    cfg: SegmentConfig,
    train_ds: SegmentationDataset,
    val_loader: DataLoader,
    labels: list[str],
    d: _Dist,
    device: torch.device,
) -> dict[str, Any]:
    """Thesis 4.1: short runs with K seeds, ranked by validation mean IoU (background excluded)."""
    per_epoch = max(len(train_ds) // (cfg.batch_size * d.world_size), 1)
    full = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
    trial_steps = cfg.search_steps or max(1, full // 5)
    trials = []
    for i, s in enumerate(_seed_trials(cfg.seed, cfg.seed_search)):
        fit = _fit(cfg, s, trial_steps, train_ds, len(labels), d, device, desc=f"seed trial {i + 1}/{cfg.seed_search}")
        val = evaluate(fit.model, val_loader, len(labels), labels, device) if d.main else None
        val = _broadcast(val, d)  # rank 0's numbers decide on every rank
        trials.append({
            "trial": i,
            "seed": s,
            "steps": fit.steps,
            "train_loss": fit.history[-1]["train_loss"],
            "val_mean_iou": val["mean_iou"],
            "val_pixel_accuracy": val["pixel_accuracy"],
            "seconds": round(fit.seconds, 3),
        })  # fmt: skip

    def score(t: dict[str, Any]) -> float:
        return t["val_mean_iou"] if t["val_mean_iou"] is not None else -math.inf

    best = max(trials, key=score)  # first of equals: stable
    return {
        "metric": "val_mean_iou",
        "base_seed": cfg.seed,
        "k": cfg.seed_search,
        "steps_per_trial": trial_steps,
        "trials": trials,
        "winner": {"trial": best["trial"], "seed": best["seed"], "val_mean_iou": best["val_mean_iou"]},
    }
