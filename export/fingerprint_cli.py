"""``seedlock export fingerprint-gan`` (and ``export onnx`` on a fingerprint GAN checkpoint):
the export options and entry point of the task."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seedlock.core.argtypes import positive_int

OPTIONS: tuple[str, ...] = ("max_count",)


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--max-count", type=positive_int, default=None,
                        help="fingerprint GANs: most images one Generate request may ask for (default: 64)")


def export(checkpoint: Any, repository: str | Path, **kwargs: Any) -> Any:
    from seedlock.export.fingerprint import export_generator

    return export_generator(checkpoint, repository, **kwargs)


def torch_graphs(checkpoint: Any) -> dict[str, Any]:
    from seedlock.export.fingerprint import torch_graphs as graphs

    return graphs(checkpoint)
