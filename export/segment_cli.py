"""``seedlock export segment`` (and ``export onnx`` on a segmentation
checkpoint): the segmenter's export options and entry point."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seedlock.core.argtypes import positive_int

OPTIONS = ("size",)


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--size", type=positive_int, default=None,
                        help="segmenters: square input size the server letterboxes images to, a multiple of "
                        "2**depth (default: the training size)")


def export(checkpoint: Any, repository: str | Path, **kwargs: Any) -> Any:
    from seedlock.export.segmenter import export_segmenter

    return export_segmenter(checkpoint, repository, **kwargs)


def torch_graphs(checkpoint: Any) -> dict[str, Any]:
    from seedlock.export.segmenter import torch_graphs as graphs

    return graphs(checkpoint)
