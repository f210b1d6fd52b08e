"""What every task's export shares: the one export driver (checkpoint -> the
task's exporter, chosen from the task table by the checkpoint's ``task``), the
one result type, the stored parity reference, and the tool versions recorded
in the manifest.

Each task's export module (named in :data:`seedlock.core.tasks.TASKS`)
provides ``export(checkpoint, repository, *, name, version, overwrite, log,
**options)``; this module imports no torch until a checkpoint is loaded.
"""

from __future__ import annotations

import io
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from seedlock.core import tasks
from seedlock.core.errors import UserError
from seedlock.core.manifest import Manifest
from seedlock.export.errors import ExportError

if TYPE_CHECKING:
    from seedlock.export.parity import ParityRow
    from seedlock.train.checkpoint import Checkpoint

TOLERANCE = 1e-4  # torch vs ONNX Runtime, float32, every task


@dataclass
class ExportResult:
    """A written model version: its folder, manifest, the parity table the
    export printed, and task-specific findings (e.g. the checked captions)."""

    folder: Path
    manifest: Manifest
    rows: list["ParityRow"]
    details: dict[str, Any] = field(default_factory=dict)


def check_target(repository: str | Path, name: str, version: int, overwrite: bool) -> Path:
    """Refuse before the slow part when the version exists and may not be replaced."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UserError(f"--version must be a positive integer (Triton version folders start at 1), got {version!r}")
    target = Path(repository) / name / str(version)
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists; pass --overwrite or choose another --version")
    return target


def as_checkpoint(checkpoint: "str | Path | Checkpoint", task: str) -> "Checkpoint":
    """Load ``checkpoint`` (a path or an already loaded one) and check it holds a ``task`` model."""
    from seedlock.train.checkpoint import Checkpoint, load_checkpoint

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if ckpt.task != task:
        other = tasks.get(ckpt.task)
        raise ExportError(
            f"{ckpt.path} is a {ckpt.task!r} checkpoint, not a {task!r} one "
            f"(export it with `seedlock export {other.command}` or `seedlock export onnx`)"
        )
    return ckpt


def export_checkpoint(
    checkpoint: str | Path,
    repository: str | Path,
    *,
    name: str | None = None,
    version: int = 1,
    overwrite: bool = False,
    task: str | None = None,
    log: Callable[[str], None] = print,
    intra_op_threads: int | None = None,
    precision: str = "fp32",
    **options: Any,
) -> ExportResult:
    """Export any task's checkpoint with its task's exporter. ``task``, when
    given, is what the caller expects the checkpoint to hold; ``options`` are
    task-specific (``size`` for segmenters, ``max_count`` for fingerprint GANs)
    and ``None`` values mean "the default". ``intra_op_threads``: the session
    thread count the model is pinned to (see
    :func:`seedlock.export.repository.write_model_version`). ``precision``
    "bf16"/"int8": an OpenVINO version gated against fp32
    (:mod:`seedlock.export.precision`)."""
    from seedlock.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    row = tasks.get(ckpt.task)
    if task is not None and task != row.name:
        raise UserError(
            f"{ckpt.path} holds a {row.name!r} model, not a {task!r} one; "
            f"export it with `seedlock export {row.command}` or `seedlock export onnx`"
        )
    module = row.module("export")
    given = {k: v for k, v in options.items() if v is not None}
    foreign = sorted(set(given) - set(module.OPTIONS))
    if foreign:
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise UserError(f"{flags} do(es) not apply to a {row.name} model")
    check_target(repository, name or row.model_name, version, overwrite)
    if intra_op_threads is not None:
        given["intra_op_threads"] = intra_op_threads
    name = name or row.model_name
    if precision == "fp32":
        return module.export(ckpt, repository, name=name, version=version, overwrite=overwrite, log=log, **given)
    from seedlock.export.precision import check_precision, export_precision

    check_precision(precision, row.name)
    return export_precision(
        lambda scratch: module.export(ckpt, scratch, name=name, version=version, overwrite=True, log=_scratch_log(log), **given),
        repository, precision, overwrite, log,
    )  # fmt: skip


def _scratch_log(log: Callable[[str], None]) -> Callable[[str], None]:
    """The fp32 export a reduced-precision one is derived from lands in a
    scratch folder: say so instead of printing its path."""
    return lambda line: log("fp32 export checked (the reference for the gate)" if line.startswith("wrote ") else line)


def tool_versions() -> dict[str, str]:
    import onnx
    import onnxruntime as ort
    import torch

    from seedlock.core.version import VERSION

    return {
        "seedlock": VERSION,
        "torch": torch.__version__.split("+")[0],
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
    }


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def reference_file(role: str, tensor: str) -> str:
    return f"reference.{role}.{tensor}.npy"


def graph_reference(
    graphs: Mapping[str, tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]]],
    tolerance: float = TOLERANCE,
    seed: int | None = None,
    task: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest's ``reference`` section and the ``.npy`` files it names.

    ``graphs[role] = (inputs, outputs)``: seeded inputs of that graph and the
    torch outputs on them. ``task``: the answer the task's whole pipeline gave
    (``export verify`` recomputes it through the task spec)."""
    section: dict[str, Any] = {"graphs": {}, "tolerance": float(tolerance)}
    if seed is not None:
        section["seed"] = int(seed)
    files: dict[str, bytes] = {}
    for role, (inputs, outputs) in graphs.items():
        entry: dict[str, dict[str, str]] = {"inputs": {}, "outputs": {}}
        for kind, tensors in (("inputs", inputs), ("outputs", outputs)):
            for tensor, array in tensors.items():
                fname = reference_file(role, tensor)
                entry[kind][tensor] = fname
                files[fname] = npy_bytes(array)
        section["graphs"][role] = entry
    if task:
        section["task"] = task
    return section, files
