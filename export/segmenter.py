"""Export a U-Net segmenter checkpoint into the model repository.

The export verifies itself before writing anything: torch eager vs ONNX Runtime
on random inputs (several batch sizes and spatial sizes, since H, W and the
batch axis are dynamic) and on scenes from the embedded dataset; the worst
absolute error must be within ``tolerance`` (1e-4 in float32) or nothing is
written. A small seeded reference input and torch's output on it are stored
beside the model so ``seedlock export verify`` can re-check parity without the
checkpoint.
"""

from __future__ import annotations

import io
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch.export import Dim

import seedlock
from seedlock.core.errors import UserError
from seedlock.core.imaging import normalize
from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.core.rng import SeedStream
from seedlock.export import parity
from seedlock.export.onnx_export import ExportError, serialize, to_onnx
from seedlock.export.repository import write_model_version
from seedlock.train.checkpoint import Checkpoint, load_checkpoint

MODEL_FILE = "model.onnx"
REFERENCE_INPUT = "reference_input.npy"
REFERENCE_OUTPUT = "reference_output.npy"
TOLERANCE = 1e-4
# Seed of the reference input stored with every export (documented, so anyone
# can regenerate it with seedlock.core.rng.SeedStream(REFERENCE_SEED)).
REFERENCE_SEED = 20201


@dataclass
class ExportResult:
    folder: Path
    manifest: Manifest
    rows: list[parity.ParityRow]


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def tool_versions() -> dict[str, str]:
    return {
        "seedlock": seedlock.__version__,
        "torch": torch.__version__.split("+")[0],
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
    }


def cpu_session(model_bytes: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def reference_input(size: int) -> np.ndarray:
    """The seeded float32 input stored with the export (1x3xSxS, standard normal)."""
    return SeedStream(REFERENCE_SEED).normal((1, 3, size, size)).astype(np.float32)


def parity_cases(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    pre = ckpt.preprocess
    size, div = int(pre["size"]), int(pre["divisor"])
    stream = SeedStream(REFERENCE_SEED, 1)
    cases = {
        "random b1": stream.normal((1, 3, size, size)).astype(np.float32),
        "random b3": stream.normal((3, 3, size, size)).astype(np.float32),
        "random b2 non-square": stream.normal((2, 3, 2 * div, 3 * div)).astype(np.float32),
    }
    try:
        from seedlock.train.data.scenes import make_scene

        images = np.stack([make_scene(ckpt.seed + 1, i, size)[0] for i in range(2)])
        cases["dataset scenes b2"] = normalize(images, pre["mean"], pre["std"])
    except ImportError:  # pragma: no cover - dataset module always ships
        pass
    return cases


def build_manifest(ckpt: Checkpoint, name: str, version: int, num_classes: int, rows: list[parity.ParityRow]) -> Manifest:
    pre = dict(ckpt.preprocess)
    pre.setdefault("resize", "letterbox")
    metrics = dict(ckpt.metrics)
    metrics["export_parity_max_abs"] = max(r.max_abs for r in rows)
    return Manifest(
        name=name,
        version=version,
        task="segmentation",
        graphs={
            "model": GraphSpec(
                file=MODEL_FILE,
                inputs=[TensorSpec("image", "float32", [-1, 3, -1, -1])],
                outputs=[TensorSpec("logits", "float32", [-1, num_classes, -1, -1])],
            )
        },
        preprocess=pre,
        postprocess={"argmax_axis": 1},
        labels=list(ckpt.labels),
        seed=ckpt.seed,
        config=ckpt.config,
        metrics=metrics,
        tools=tool_versions(),
    )


def export_segmenter(
    checkpoint: str | Path,
    repository: str | Path,
    name: str = "segmenter",
    version: int = 1,
    overwrite: bool = False,
    tolerance: float = TOLERANCE,
    log: Callable[[str], None] = print,
    size: int | None = None,
) -> ExportResult:
    """Export, verify, and write ``<repository>/<name>/<version>/``.

    ``size`` sets the square input the server letterboxes images to (default:
    the training size). The U-Net is fully convolutional, so any multiple of
    ``2**depth`` works; a larger size keeps more detail of large images.
    """
    target = Path(repository) / name / str(version)
    if target.exists() and not overwrite:  # fail before the slow part
        raise UserError(f"{target} already exists; pass --overwrite or choose another --version")
    ckpt = load_checkpoint(checkpoint)
    if ckpt.task != "segmentation":
        raise ExportError(f"{checkpoint} is a {ckpt.task!r} checkpoint, not a segmentation one")
    if size is not None:
        div = int(ckpt.preprocess["divisor"])
        if size < div or size % div:
            raise UserError(f"--size must be a positive multiple of {div} for this model, got {size}")
        ckpt.preprocess = {**ckpt.preprocess, "size": int(size)}
    model = ckpt.model.eval()
    pre = ckpt.preprocess
    size, div = int(pre["size"]), int(pre["divisor"])
    h, w = Dim("h", min=1, max=8192 // div), Dim("w", min=1, max=8192 // div)
    dynamic = ({0: Dim("batch", min=1, max=4096), 2: div * h, 3: div * w},)
    example = torch.zeros(1, 3, size, size)
    log(f"exporting {checkpoint} -> ONNX (opset 18, dynamic batch/height/width, multiples of {div})")
    proto = to_onnx(model, (example,), ["image"], ["logits"], dynamic)
    model_bytes = serialize(proto)

    session = cpu_session(model_bytes)

    def run_torch(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    def run_ort(x: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"image": x})[0]

    rows = parity.run_cases(parity_cases(ckpt), run_torch, run_ort, tolerance)
    log(parity.format_table(rows))
    failed = [r for r in rows if not r.ok]
    if failed:
        raise ExportError(
            f"ONNX Runtime differs from torch by {max(r.max_abs for r in failed):.3e} > {tolerance:.0e}; nothing was written"
        )
    ref_in = reference_input(2 * div)
    ref_out = run_torch(ref_in)
    num_classes = int(ref_out.shape[1])
    manifest = build_manifest(ckpt, name, version, num_classes, rows)
    manifest.preprocess["reference"] = {"input": REFERENCE_INPUT, "output": REFERENCE_OUTPUT, "seed": REFERENCE_SEED, "tolerance": tolerance}
    folder = write_model_version(
        repository,
        manifest,
        {MODEL_FILE: model_bytes, REFERENCE_INPUT: npy_bytes(ref_in), REFERENCE_OUTPUT: npy_bytes(ref_out)},
        overwrite=overwrite,
    )
    log(f"wrote {folder} (digest {manifest.digest[:16]}…)")
    return ExportResult(folder, manifest, rows)
