"""``seedlock export fingerprint-gan`` (and ``export onnx`` on a fingerprint GAN checkpoint):
the export options and entry point of the task. The torch-heavy exporter
(:mod:`seedlock.export.fingerprint`) is imported only when a checkpoint is exported."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seedlock.core.argtypes import positive_int
from seedlock.core.fingerprints import DEFAULT_MAX_COUNT

OPTIONS: tuple[str, ...] = ("max_count",)


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--max-count", type=positive_int, default=None,
                        help=f"fingerprint GANs: most images one Generate request may ask for (default: {DEFAULT_MAX_COUNT})")


def export(checkpoint: Any, repository: str | Path, **kwargs: Any) -> Any:
    """``export_generator``: keyword arguments ``name``, ``version``, ``overwrite``, ``log``, ``max_count``."""
    from seedlock.export.fingerprint import export_generator

    return export_generator(checkpoint, repository, **kwargs)


def torch_graphs(checkpoint: Any) -> dict[str, Any]:
    from seedlock.export.fingerprint import torch_graphs as graphs

    return graphs(checkpoint)
