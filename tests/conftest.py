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
