"""Shared fixtures: a tiny real U-Net checkpoint and its exported repository."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENE_LABELS = None  # filled lazily from the dataset module


def pytest_configure(config):
    # Two cores: one intra-op thread per test process keeps runs predictable.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_cli(*args: str, timeout: float = 300, env: dict | None = None, check: bool = False):
    """Run ``python -m seedlock ARGS`` in a subprocess, as a user would."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "seedlock", *args], capture_output=True, text=True, timeout=timeout, env=full_env
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"seedlock {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def make_tiny_checkpoint(
    path: Path, activation: str = "bi-elu", norm: str = "batch", seed: int = 3, num_classes: int | None = None,
    width: int = 4, size: int = 32,
) -> Path:
    """A small untrained U-Net (with a bi-activation, so the custom op travels)
    saved in the real checkpoint format, with BN statistics made non-trivial."""
    import torch

    from seedlock.train.checkpoint import save_checkpoint
    from seedlock.train.data.scenes import SCENE_CLASSES
    from seedlock.train.unet import UNet, UNetConfig

    torch.manual_seed(seed)
    labels = list(SCENE_CLASSES) if num_classes is None else ["background"] + [f"class{i}" for i in range(1, num_classes)]
    cfg = UNetConfig(num_classes=len(labels), width=width, depth=2, activation=activation, norm=norm)
    model = UNet(cfg)
    model.train()
    with torch.no_grad():  # a few forward passes in train mode populate running stats
        for _ in range(3):
            model(torch.randn(2, 3, 32, 32))
    model.eval()
    return save_checkpoint(
        path,
        task="segmentation",
        model=model,
        model_config=cfg.to_dict(),
        config={"note": "tiny test model", "seed": seed},
        labels=labels,
        metrics={},
        seed=seed,
        preprocess={"size": size, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "divisor": cfg.divisor},
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint.pt")


@pytest.fixture(scope="session")
def segmenter_repository(tmp_path_factory, tiny_checkpoint) -> Path:
    """A model repository holding the tiny U-Net exported as ``segmenter`` v1."""
    from seedlock.export.segmenter import export_segmenter

    repo = tmp_path_factory.mktemp("repository")
    export_segmenter(tiny_checkpoint, repo, name="segmenter", version=1, log=lambda _: None)
    return repo


# -- a tiny composer, trained once per session on synthetic melodies (no corpus) --
COMPOSER_GENRES = ("up", "down")


def synthetic_piece(genre_index: int, i: int, n: int = 40):
    """A melody of genre 0 (rising) or 1 (falling), as music events."""
    from seedlock.core import music_events as me

    base = 60 + (i % 5)
    if genre_index == 0:
        return me.from_values([(base + (2 * k) % 12, 0.5) for k in range(n)])
    return me.from_values([(base + 12 - (k * 3) % 12, 1.0 if k % 3 else 2.0) for k in range(n)])


@pytest.fixture(scope="session")
def composer_model(tmp_path_factory):
    """A tiny trained composer: (checkpoint folder, repository, version folder)."""
    from seedlock.export.compose import export_composer
    from seedlock.train import compose_train as ct
    from seedlock.train.data import music_corpus as mc

    genres = list(COMPOSER_GENRES)
    pieces = [mc.Piece(g, f"{g}/{i}", synthetic_piece(gi, i)) for gi, g in enumerate(genres) for i in range(6)]
    data = mc.split_pieces(pieces, genres, seed=3)
    out = tmp_path_factory.mktemp("composer")
    cfg = ct.ComposeConfig(out=str(out), window=8, horizon=8, hidden=16, epochs=2, batch_size=16, stride=4,
                           seed=5, eval_windows=8, progress=False)
    ct.train_compose(cfg, data, log=lambda s: None)
    repo = tmp_path_factory.mktemp("composerrepo")
    export_composer(out, repo, name="composer", version=1, log=lambda s: None)
    return out, repo, repo / "composer" / "1"
