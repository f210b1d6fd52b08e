"""``seedlock export compose`` (and ``export onnx`` on a composition checkpoint):
the export options and entry point of the task."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

OPTIONS: tuple[str, ...] = ()


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    pass  # no options of its own


def export(checkpoint: Any, repository: str | Path, **kwargs: Any) -> Any:
    from seedlock.export.compose import export_composer

    return export_composer(checkpoint, repository, **kwargs)


def torch_graphs(checkpoint: Any) -> dict[str, Any]:
    from seedlock.export.compose import torch_graphs as graphs

    return graphs(checkpoint)
