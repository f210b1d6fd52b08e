"""Train the fake-fingerprint DCGAN (thesis 3.6), seed-locked.

``train_fingerprint_gan(cfg)`` writes into ``cfg.out``:

    checkpoint.pt         generators + discriminators and everything export needs
    config.json           the resolved FingerprintGANConfig (feed it back with --config)
    metrics.json          loss history, timing, similarity of generated vs held-out images
    data_samples.png      training images, one row per quality (thesis Figure 31)
    samples_start.png     generated images before training        (thesis Figure 32 a; flat grey:
                          eval mode with the initial batch-norm statistics)
    samples_middle.png    ... half way                            (Figure 32 b)
    samples_end.png       ... at the end                          (Figure 32 c)
    samples_progress.png  the three side by side
    loss_curves.png       discriminator and generator losses

Modes (the thesis's comparison): ``all`` trains one DCGAN on every selected
quality together; ``each`` trains one DCGAN per quality on that quality's
images only. ``steps`` counts optimizer steps per DCGAN.

Losses: ``bce`` (the original non-saturating GAN loss), ``hinge``, ``lsgan``
(least squares, targets 0/1), each optionally plus the prediction-error
regularizers of thesis 3.3 (see :class:`GANLoss`).

Determinism: DCGAN ``i`` (0 for ``all``) uses seed ``seed + i`` for its
weight init and for a ``torch.Generator`` that draws the data order and the
training latents; deterministic algorithms are on and the embedded data comes
from its own ``data_seed``. The sample grids use the serving latents
``seedlock.core.fingerprints.latents(seed, n, latent_dim)``, so
``samples_end.png`` shows what the exported model returns for that seed. The
same config and seed on the same machine and thread count give bit-identical
weights.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from seedlock.core.errors import UserError
from seedlock.core.fingerprints import ALL, QUALITIES, FingerprintSpec, from_uint8, latents, tile, to_uint8
from seedlock.core.imaging import write_png
from seedlock.core.similarity import compare_sets
from seedlock.train.checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from seedlock.train.config import ConfigFile, is_int, need
from seedlock.train.dcgan import (
    D_ACTIVATIONS,
    G_ACTIVATIONS,
    IMAGE_SIZES,
    DCGANConfig,
    DiscriminatorBank,
    GeneratorBank,
    build_discriminator,
    build_generator,
)
from seedlock.train.determinism import deterministic

TASK = FingerprintSpec.TASK  # the checkpoint's and manifest's task (the CLI word is "fingerprint-gan")
GAN_LOSSES = ("bce", "hinge", "lsgan")
MODES = ("all", "each")
DEVICES = ("cpu", "cuda", "auto")
EMBEDDED = "embedded"
HELDOUT_PER_QUALITY = 64  # at most this many held-out images per quality in the end-of-run similarity check


# --------------------------------------------------------------------------- config


@dataclass
class FingerprintGANConfig(ConfigFile):
    """Every option of a fingerprint-GAN run. Field names are the CLI flags
    (``_`` -> ``-``) and the keys of a ``--config`` YAML/JSON file.

    The defaults are the calibrated demo (about 2-3 minutes on 2 CPU cores
    for ``mode="all"``): Radford et al.'s optimizer (Adam lr 2e-4, beta1 0.5)
    and architecture, narrower (generator 32, discriminator 16; the paper's
    64/64 with ``g_width = d_width = 64``), batch 32 (paper: 128), and the
    thesis's 600 images per quality. The discriminator is the narrower one
    because at equal width it overpowers the generator within a short run
    (logits about +4.5 on real and -4 on generated images, generator loss
    about 7, broken ridges) while costing three quarters of each step."""

    KIND = "fingerprint-gan"

    # data
    data: str = EMBEDDED  # "embedded" (procedural) or a folder with quality subfolders
    data_seed: int = 0
    size: int = 64  # 64 or 128
    n_per_quality: int | None = None  # embedded: 600 per quality; folder: a cap (None: all)
    qualities: list[str] | None = None  # None: Q1 Q2 Q3 Q5 (embedded) / every subfolder
    mode: str = "all"  # "all": one DCGAN on all qualities; "each": one DCGAN per quality
    # model
    latent_dim: int = 100
    g_width: int = 32
    d_width: int = 16
    g_activation: str = "relu"
    d_activation: str = "leaky-relu"
    alpha: float = 1.0
    leak: float = 0.2
    # loss
    loss: str = "bce"
    l1: float = 0.0
    l2: float = 0.0
    exp_reg: float = 0.0
    # optimization
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 32
    steps: int = 1000  # optimizer steps per DCGAN
    seed: int = 777
    # run
    samples: int = 64  # images in each sample grid
    log_every: int = 25  # steps per loss-history entry
    out: str = "runs/fingerprint-gan"
    threads: int | None = None
    device: str = "cpu"
    progress: bool = True

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first bad option."""
        for name in ("latent_dim", "g_width", "d_width", "batch_size", "steps", "samples", "log_every"):
            v = getattr(self, name)
            need(is_int(v) and v >= 1, f"{name} must be a positive integer, got {v!r}")
        for name in ("n_per_quality", "threads"):
            v = getattr(self, name)
            need(v is None or (is_int(v) and v >= 1), f"{name} must be a positive integer, got {v!r}")
        for name in ("seed", "data_seed"):
            v = getattr(self, name)
            need(is_int(v) and v >= 0, f"{name} must be a non-negative integer, got {v!r}")
        need(self.size in IMAGE_SIZES, f"size must be one of {', '.join(map(str, IMAGE_SIZES))}, got {self.size!r}")
        need(self.mode in MODES, f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        need(self.loss in GAN_LOSSES, f"loss must be one of {', '.join(GAN_LOSSES)}, got {self.loss!r}")
        need(self.g_activation in G_ACTIVATIONS, f"g_activation must be one of {', '.join(G_ACTIVATIONS)}, got {self.g_activation!r}")
        need(self.d_activation in D_ACTIVATIONS, f"d_activation must be one of {', '.join(D_ACTIVATIONS)}, got {self.d_activation!r}")
        need(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for name in ("lr", "alpha"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and math.isfinite(v) and v > 0, f"{name} must be a positive number, got {v!r}")
        for name in ("l1", "l2", "exp_reg"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0, f"{name} must be a number >= 0, got {v!r}")
        for name in ("beta1", "beta2", "leak"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and 0 <= v < 1, f"{name} must be in [0, 1), got {v!r}")
        if self.qualities is not None:
            need(isinstance(self.qualities, list) and len(self.qualities) > 0, "qualities must be a non-empty list")
            need(len(set(self.qualities)) == len(self.qualities), f"qualities repeat: {self.qualities}")
            if self.data == EMBEDDED:
                bad = [q for q in self.qualities if q not in QUALITIES]
                need(not bad, f"unknown quality {', '.join(bad)} for the embedded data; choose from {', '.join(QUALITIES)}")

    def model_config(self) -> DCGANConfig:
        return DCGANConfig(
            image_size=self.size, latent_dim=self.latent_dim, channels=1, g_width=self.g_width, d_width=self.d_width,
            g_activation=self.g_activation, d_activation=self.d_activation, alpha=float(self.alpha), leak=float(self.leak),
        )  # fmt: skip

    def make_loss(self) -> "GANLoss":
        return GANLoss(self.loss, l1=self.l1, l2=self.l2, exp_reg=self.exp_reg)


def demo_config(out: str = "runs/fingerprint-gan", **overrides: Any) -> FingerprintGANConfig:
    """The calibrated demo (the :class:`FingerprintGANConfig` defaults): 64 px, 600
    embedded images per quality, widths 32 (G) / 16 (D), batch 32, 1000 steps;
    about 2-3 minutes on 2 CPU cores. With ``mode="each"`` every per-quality
    DCGAN gets the same 1000 steps, so it takes four times as long: splitting
    the steps to equalize compute (250 each) leaves them grey and half
    collapsed, and the thesis comparison would then measure undertraining."""
    return FingerprintGANConfig(out=out, **overrides)


# --------------------------------------------------------------------------- losses


class GANLoss:
    """Discriminator and generator losses on raw logits, plus the thesis-3.3 regularizers.

    ``bce``: D minimizes ``BCE(D(x), 1) + BCE(D(G(z)), 0)``; G the non-saturating
    ``BCE(D(G(z)), 1)``. ``hinge``: D ``mean relu(1 - D(x)) + mean relu(1 + D(G(z)))``,
    G ``-mean D(G(z))``. ``lsgan``: D ``(mean (D(x) - 1)^2 + mean D(G(z))^2) / 2``,
    G ``mean (D(G(z)) - 1)^2 / 2``.

    Regularizers act on the prediction error ``e = y - p`` of the player being
    updated, with targets ``y`` (D: 1 real, 0 fake; G: 1) and predictions
    ``p = sigmoid(logit)`` (bce, hinge) or the raw output (lsgan, which regresses
    the targets directly)::

        L1 = mean |e|,   L2 = mean e^2,   Exp = mean|e| * exp(-mean e^2)   (Eq. 5)

        total = base + l1 * L1 + l2 * L2 + exp_reg * Exp

    Eq. 5 is printed with a leading minus; added to a minimized loss that sign
    would reward error, so the magnitude is added (as in the segmentation loss).
    """

    def __init__(self, name: str = "bce", l1: float = 0.0, l2: float = 0.0, exp_reg: float = 0.0) -> None:
        if name not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {name!r}; choose one of {', '.join(GAN_LOSSES)}")
        for label, value in (("l1", l1), ("l2", l2), ("exp_reg", exp_reg)):
            if value < 0:
                raise ValueError(f"{label} coefficient must be >= 0, got {value}")
        self.name, self.l1, self.l2, self.exp_reg = name, float(l1), float(l2), float(exp_reg)

    def _prediction(self, logits: Tensor) -> Tensor:
        return logits if self.name == "lsgan" else torch.sigmoid(logits)

    def _regularize(self, base: Tensor, error: Tensor) -> tuple[Tensor, dict[str, float]]:
        terms = {"base": float(base.detach())}
        total = base
        if self.l1 or self.l2 or self.exp_reg:
            mean_abs = error.abs().mean()
            mean_sq = (error * error).mean()
            exp_term = mean_abs * torch.exp(-mean_sq)
            total = total + self.l1 * mean_abs + self.l2 * mean_sq + self.exp_reg * exp_term
            terms.update(l1=float(mean_abs.detach()), l2=float(mean_sq.detach()), exp=float(exp_term.detach()))
        terms["total"] = float(total.detach())
        return total, terms

    def d_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Discriminator loss from logits on a real and a generated batch."""
        if self.name == "bce":
            base = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
                fake, torch.zeros_like(fake)
            )
        elif self.name == "hinge":
            base = F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
        else:
            base = 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()
        error = torch.cat([1.0 - self._prediction(real), 0.0 - self._prediction(fake)])
        return self._regularize(base, error)

    def g_loss(self, fake: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Generator loss from the discriminator's logits on generated images."""
        if self.name == "bce":
            base = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        elif self.name == "hinge":
            base = -fake.mean()
        else:
            base = 0.5 * ((fake - 1.0) ** 2).mean()
        return self._regularize(base, 1.0 - self._prediction(fake))


# --------------------------------------------------------------------------- data


def embedded_heldout(data_seed: int, quality: str, count: int, size: int, offset: int = 0) -> np.ndarray:
    """Held-out embedded impressions (never in any training set), uint8 ``(count, size, size)``."""
    from seedlock.train.data.fingerprints import HOLDOUT_OFFSET, make_fingerprints

    return make_fingerprints(data_seed, quality, count, size, start=HOLDOUT_OFFSET + offset)


def load_training_images(cfg: FingerprintGANConfig) -> dict[str, np.ndarray]:
    """Training images per quality, uint8 ``(N, S, S)`` each, in quality order."""
    if cfg.data == EMBEDDED:
        from seedlock.train.data.fingerprints import make_fingerprints

        n = cfg.n_per_quality or 600
        return {q: make_fingerprints(cfg.data_seed, q, n, cfg.size) for q in (cfg.qualities or list(QUALITIES))}
    from seedlock.train.data.fingerprint_folder import load_quality_folder

    folder = load_quality_folder(cfg.data, cfg.size, cfg.qualities, cfg.n_per_quality)
    return folder.images


# --------------------------------------------------------------------------- runtime


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda requested but no CUDA GPU is available (use --device cpu)")
    return torch.device(name)


def generate(generator: nn.Module, z: np.ndarray, batch: int = 256) -> np.ndarray:
    """Eval-mode generator on latents ``(N, Z)`` -> float32 ``(N, C, S, S)`` (restores the mode)."""
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(z), batch):
            outs.append(generator(torch.from_numpy(z[i : i + batch]).to(device)).cpu().numpy())
    generator.train(was_training)
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


# --------------------------------------------------------------------------- training


@dataclass
class _Run:
    name: str
    seed: int
    history: list[dict[str, float]] = field(default_factory=list)
    snapshots: dict[str, np.ndarray] = field(default_factory=dict)  # start/middle/end -> uint8 (n, S, S)
    seconds: float = 0.0


def _train_one(
    cfg: FingerprintGANConfig,
    name: str,
    seed: int,
    images: np.ndarray,
    device: torch.device,
    sample_z: np.ndarray,
    desc: str,
) -> tuple[nn.Module, nn.Module, _Run]:
    """One DCGAN from scratch on ``images`` (uint8 (N, S, S))."""
    mcfg = cfg.model_config()
    torch.manual_seed(seed)
    g, d = build_generator(mcfg).to(device), build_discriminator(mcfg).to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    loss = cfg.make_loss()
    rng = torch.Generator().manual_seed(seed)  # data order and training latents (CPU: same on any device)
    x_all = torch.from_numpy(from_uint8(images)[:, None]).to(device)
    n = len(x_all)
    batch = min(cfg.batch_size, n)
    if batch < 2:
        raise UserError(f"quality {name!r} has {n} image(s); batch norm needs at least 2")
    run = _Run(name, seed)
    marks = {"start": 0, "middle": cfg.steps // 2}

    def snapshot(label: str) -> None:
        run.snapshots[label] = to_uint8(generate(g, sample_z)[:, 0])

    sums: dict[str, float] = {}
    count = 0
    bar = tqdm(total=cfg.steps, desc=desc, unit="step", disable=not cfg.progress, file=sys.stderr, dynamic_ncols=True)
    start = time.perf_counter()
    g.train()
    d.train()
    step = 0
    while step < cfg.steps:
        order = torch.randperm(n, generator=rng)
        for i in range(0, n - batch + 1, batch):  # equal batches: batch-norm statistics stay comparable
            for label, at in marks.items():
                if step == at:
                    snapshot(label)
            real = x_all[order[i : i + batch].to(device)]
            z = torch.randn(batch, mcfg.latent_dim, generator=rng).to(device)
            fake = g(z)
            d_real, d_fake = d(real), d(fake.detach())
            loss_d, terms_d = loss.d_loss(d_real, d_fake)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g, terms_g = loss.g_loss(d(fake))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            step += 1
            entry = {
                "d_loss": terms_d["total"],
                "g_loss": terms_g["total"],
                "d_real": float(d_real.detach().mean()),
                "d_fake": float(d_fake.detach().mean()),
            }
            for k, v in entry.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                run.history.append({"step": step, **{k: v / count for k, v in sums.items()}})
                sums, count = {}, 0
            bar.update(1)
            bar.set_postfix(d=f"{terms_d['total']:.3f}", g=f"{terms_g['total']:.3f}", refresh=False)
            if step >= cfg.steps:
                break
    bar.close()
    snapshot("end")
    run.seconds = time.perf_counter() - start
    if not all(math.isfinite(h["d_loss"]) and math.isfinite(h["g_loss"]) for h in run.history):
        raise UserError(f"training {name!r} diverged (non-finite loss); lower --lr or change --loss")
    return g, d, run


def _similarity_check(bank: GeneratorBank, cfg: FingerprintGANConfig, images: dict[str, np.ndarray]) -> dict[str, Any]:
    """Generated vs held-out real images (embedded data) or vs the training images (folder data),
    plus a real-vs-real baseline, with the four measures of :mod:`seedlock.core.similarity`."""
    qualities = list(images)
    # as many as the smallest training quality, at most HELDOUT_PER_QUALITY: tiny runs stay quick
    per_q = max(2, min(HELDOUT_PER_QUALITY, min(len(v) for v in images.values())))
    if cfg.data == EMBEDDED:
        real = np.concatenate([embedded_heldout(cfg.data_seed, q, per_q, cfg.size) for q in qualities])
        baseline = np.concatenate([embedded_heldout(cfg.data_seed, q, per_q, cfg.size, offset=per_q) for q in qualities])
        against = "held-out embedded images"
    else:
        real = np.concatenate([images[q][:per_q] for q in qualities])
        baseline = np.concatenate([images[q][per_q : 2 * per_q] for q in qualities if len(images[q]) > per_q] or [real])
        against = "training images (folder data has no held-out split)"
    # a fixed seed of its own, so the check does not reuse the sample-grid latents
    z = latents(cfg.seed + 1, per_q * len(qualities), cfg.latent_dim)
    out = generate(bank, z)
    if len(bank.names) == 1:
        fake = to_uint8(out[:, 0])
    else:  # per-quality bank: per_q images from each quality's generator
        fake = np.concatenate([to_uint8(out[k * per_q : (k + 1) * per_q, k]) for k in range(len(bank.names))])
    return {
        "against": against,
        "real_vs_generated": compare_sets(real, fake),
        "real_vs_real": compare_sets(real, baseline),
    }


def _write_grids(out: Path, runs: list[_Run]) -> None:
    for label in ("start", "middle", "end"):
        imgs = np.concatenate([r.snapshots[label] for r in runs if label in r.snapshots])
        write_png(out / f"samples_{label}.png", tile(imgs, cols=8))
    grids = [tile(np.concatenate([r.snapshots[lb] for r in runs]), cols=8) for lb in ("start", "middle", "end")]
    gap = np.full((grids[0].shape[0], 12), 255, np.uint8)
    write_png(out / "samples_progress.png", np.concatenate([grids[0], gap, grids[1], gap, grids[2]], axis=1))


def _plot_losses(path: Path, runs: list[_Run]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for r in runs:
        steps = [h["step"] for h in r.history]
        tag = "" if r.name == ALL else f" {r.name}"
        ax.plot(steps, [h["d_loss"] for h in r.history], label=f"D{tag}")
        ax.plot(steps, [h["g_loss"] for h in r.history], label=f"G{tag}", linestyle="--")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_gan_checkpoint(
    path: str | Path,
    cfg: FingerprintGANConfig,
    generators: GeneratorBank,
    discriminators: DiscriminatorBank,
    qualities: list[str],
    metrics: dict[str, Any],
) -> Path:
    """Write the run's checkpoint in the one seedlock format
    (:func:`seedlock.train.checkpoint.save_checkpoint`): the generator bank is
    the model (``build_model`` in :mod:`seedlock.train.fingerprint_cli` rebuilds
    it from ``model_config`` and the generator names, the labels); the
    discriminators are training state only, so they ride in ``extra``."""
    return save_checkpoint(
        path,
        task=TASK,
        model=generators,
        model_config=cfg.model_config().to_dict(),
        config=cfg.to_dict(),
        labels=list(generators.names),
        metrics=metrics,
        seed=cfg.seed,
        preprocess={"mode": cfg.mode, "qualities": list(qualities)},
        extra={"discriminator": {k: v.detach().cpu().clone() for k, v in discriminators.state_dict().items()}},
    )


def train_fingerprint_gan(
    cfg: FingerprintGANConfig, log: Callable[[str], None] = print, images: dict[str, np.ndarray] | None = None
) -> Path:
    """Train per ``cfg`` and write the run folder (see the module docstring). Returns it.

    ``images``: the training images already loaded by :func:`load_training_images` for this
    ``cfg`` (several runs on one data set load it once); None loads them."""
    cfg.validate()
    device = _device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    images = load_training_images(cfg) if images is None else images
    qualities = list(images)
    data_seconds = time.perf_counter() - t0
    log(f"data: {sum(len(v) for v in images.values())} images of {cfg.size}x{cfg.size} "
        f"({', '.join(f'{q} {len(v)}' for q, v in images.items())}) in {data_seconds:.1f} s")  # fmt: skip
    write_png(out / "data_samples.png", tile(np.concatenate([v[:8] for v in images.values()]), cols=8))
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")

    names = [ALL] if cfg.mode == "all" else qualities
    sets = [np.concatenate(list(images.values()))] if cfg.mode == "all" else [images[q] for q in qualities]
    per_gen = max(1, cfg.samples // len(names))
    sample_z = latents(cfg.seed, per_gen, cfg.latent_dim)
    mcfg = cfg.model_config()
    gbank, dbank = GeneratorBank(mcfg, names), DiscriminatorBank(mcfg, names)
    runs: list[_Run] = []
    with deterministic(cfg.threads, device):
        for i, (name, data) in enumerate(zip(names, sets)):
            desc = "dcgan" if name == ALL else f"dcgan {name}"
            g, d, run = _train_one(cfg, name, cfg.seed + i, data, device, sample_z, desc)
            gbank.generators[i], dbank.discriminators[i] = g.cpu(), d.cpu()
            runs.append(run)
        gbank.eval()
        check = _similarity_check(gbank, cfg, images)

    metrics = {
        "task": TASK,
        "mode": cfg.mode,
        "qualities": qualities,
        "generators": names,
        "seed": cfg.seed,
        "steps_per_generator": cfg.steps,
        "history": {r.name: r.history for r in runs},
        "final": {r.name: r.history[-1] for r in runs if r.history},
        "similarity": check,
        "timing": {
            "data_seconds": data_seconds,
            "train_seconds": sum(r.seconds for r in runs),
            "per_generator_seconds": {r.name: r.seconds for r in runs},
            "threads": torch.get_num_threads() if not cfg.threads else cfg.threads,
            "device": str(device),
        },
    }
    _write_grids(out, runs)
    _plot_losses(out / "loss_curves.png", runs)
    save_gan_checkpoint(out / CHECKPOINT_NAME, cfg, gbank, dbank, qualities, _json_ready(metrics))
    (out / "metrics.json").write_text(json.dumps(_json_ready(metrics), indent=2, sort_keys=True) + "\n")
    return out


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class GeneratorCheckpoint:
    """A loaded fingerprint-GAN checkpoint seen as what this pipeline trained:
    the generator bank (eval mode) and its facts, read from the one
    :class:`~seedlock.train.checkpoint.Checkpoint`."""

    checkpoint: Checkpoint

    @classmethod
    def of(cls, ckpt: Checkpoint) -> "GeneratorCheckpoint":
        if ckpt.task != TASK:
            raise UserError(
                f"{ckpt.path} holds a {ckpt.task!r} model, not a fingerprint GAN "
                "(train one with `seedlock train fingerprint-gan`)"
            )
        return cls(ckpt)

    @property
    def generator(self) -> GeneratorBank:
        return self.checkpoint.model  # type: ignore[return-value]

    @property
    def model_config(self) -> DCGANConfig:
        return DCGANConfig.from_dict(dict(self.checkpoint.model_config))

    @property
    def config(self) -> dict[str, Any]:
        return self.checkpoint.config

    @property
    def mode(self) -> str:
        return str(self.checkpoint.preprocess.get("mode") or self.config.get("mode", "all"))

    @property
    def qualities(self) -> list[str]:
        return list(self.checkpoint.preprocess.get("qualities") or [])

    @property
    def generators(self) -> list[str]:
        return list(self.checkpoint.labels)

    @property
    def seed(self) -> int:
        return self.checkpoint.seed

    @property
    def metrics(self) -> dict[str, Any]:
        return self.checkpoint.metrics

    @property
    def path(self) -> Path | None:
        return self.checkpoint.path

    @property
    def discriminator_state(self) -> dict[str, Tensor]:
        return dict(self.checkpoint.extra.get("discriminator") or {})

    @property
    def per_quality(self) -> bool:
        return self.generators != [ALL]


def load_generator_checkpoint(path: str | Path) -> GeneratorCheckpoint:
    """Read ``checkpoint.pt`` (or the run folder holding it) with
    :func:`~seedlock.train.checkpoint.load_checkpoint` and check it holds a
    fingerprint GAN. Raises :class:`UserError` with one line for a missing,
    corrupt, foreign or incomplete checkpoint, or one of another task."""
    return GeneratorCheckpoint.of(load_checkpoint(path))
