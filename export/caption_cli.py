"""``seedlock export caption`` (and ``export onnx`` on a captioning checkpoint):
the export options and entry point of the task."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

OPTIONS: tuple[str, ...] = ()


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    pass  # no options of its own


def export(checkpoint: Any, repository: str | Path, **kwargs: Any) -> Any:
    from seedlock.export.caption import export_captioner

    return export_captioner(checkpoint, repository, **kwargs)


def torch_graphs(checkpoint: Any) -> dict[str, Any]:
    from seedlock.export.caption import torch_graphs as graphs

    return graphs(checkpoint)
