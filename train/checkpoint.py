"""The seedlock checkpoint file: one ``torch.save`` dict of plain types.

    {
      "format": "seedlock-checkpoint/1",
      "task": "segmentation",
      "config": {...},          # resolved training config (SegmentConfig as a dict)
      "model_config": {...},    # UNetConfig as a dict: enough to rebuild the model
      "state_dict": {...},      # tensors only
      "labels": [...],          # class names, index order
      "metrics": {...},         # final validation metrics (JSON-ready)
      "seed": int,              # the seed the weights were trained with
      "preprocess": {...},      # what the export turns into the manifest's spec
      "extra": {...},           # anything else the pipeline keeps (tensors or plain types)
    }

Every pipeline writes this one format. The model is rebuilt by the task's
train module (``build_model(model_config, labels)``, named in
:data:`seedlock.core.tasks.TASKS`), so a checkpoint of any task loads here.

Only plain Python types and tensors go in, so :func:`load_checkpoint` can use
``torch.load(weights_only=True)``: loading a checkpoint never runs pickled
code. The export reads the same fields into the model manifest.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seedlock.core import tasks
from seedlock.core.errors import UserError

FORMAT = "seedlock-checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class Checkpoint:
    task: str
    config: dict[str, Any]
    model_config: dict[str, Any]
    model: nn.Module  # built, weights loaded, in eval mode
    labels: list[str]
    metrics: dict[str, Any]
    seed: int
    preprocess: dict[str, Any]
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    *,
    task: str,
    model: nn.Module,
    model_config: dict[str, Any],
    config: dict[str, Any],
    labels: list[str],
    metrics: dict[str, Any],
    seed: int,
    preprocess: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file, then rename): a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "task": task,
        "config": config,
        "model_config": model_config,
        "state_dict": state,
        "labels": list(labels),
        "metrics": metrics,
        "seed": int(seed),
        "preprocess": preprocess,
        "extra": extra or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def _one_line(exc: BaseException, limit: int = 120) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, pickle.UnpicklingError) or text.startswith("Weights only load failed"):
        # torch's own advice here (retry with weights_only=False) is unsafe for an unknown file
        return "its bytes are not a torch.save archive"
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint (or a run folder holding ``checkpoint.pt``) and rebuild its model.

    Raises :class:`UserError` with a one-line message for a missing file, a
    file that is not a seedlock checkpoint, and a corrupt or truncated one.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds for bad bytes: pickle, zip, EOF, Runtime
        raise UserError(f"{path} is not a readable checkpoint (corrupt or truncated? {_one_line(exc)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{path} is not a seedlock checkpoint (format {found!r}, expected {FORMAT!r})")
    if data.get("task") == "fingerprint-gan" and "generator" in data:
        raise UserError(f"{path} is a fingerprint GAN saved in the layout of seedlock before one checkpoint format "
                        "served every task; retrain it with `seedlock train fingerprint-gan`")  # fmt: skip
    missing = [k for k in ("task", "model_config", "state_dict") if k not in data]
    if missing:
        raise UserError(f"{path} is an incomplete seedlock checkpoint: missing {', '.join(missing)}")
    task = tasks.find(str(data["task"]))
    if task is None:
        raise UserError(f"{path} holds a {data['task']!r} model; this seedlock knows {', '.join(tasks.names())}")
    labels = list(data.get("labels") or [])
    try:
        model = task.module("train").build_model(dict(data["model_config"]), labels)
        model.load_state_dict(data["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise UserError(f"{path}: the weights do not fit the recorded model config ({_one_line(exc)})") from None
    model.eval()
    return Checkpoint(
        task=task.name,
        config=dict(data.get("config") or {}),
        model_config=dict(data["model_config"]),
        model=model,
        labels=labels,
        metrics=dict(data.get("metrics") or {}),
        seed=int(data.get("seed", 0)),
        preprocess=dict(data.get("preprocess") or {}),
        path=path,
        extra=dict(data.get("extra") or {}),
    )
