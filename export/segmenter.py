"""Export a U-Net segmenter checkpoint into the model repository.

The export verifies itself before writing anything: torch eager vs ONNX Runtime
on random inputs (several batch sizes and spatial sizes, since H, W and the
batch axis are dynamic) and on scenes from the embedded dataset; the worst
absolute error must be within ``tolerance`` (1e-4 in float32) or nothing is
written. A small seeded reference input and torch's output on it are stored
beside the model (the manifest's ``reference``) so ``seedlock export verify``
can re-check parity without the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.export import Dim

from seedlock.core.errors import UserError
from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.core.rng import SeedStream
from seedlock.core.segmentation import SegmentationSpec
from seedlock.core.sessions import DEFAULT_MODEL_THREADS, create_session
from seedlock.export import parity
from seedlock.export.common import TOLERANCE, ExportResult, as_checkpoint, check_target, graph_reference, tool_versions
from seedlock.export.onnx_export import serialize, to_onnx
from seedlock.export.repository import write_model_version
from seedlock.train.checkpoint import Checkpoint

TASK = SegmentationSpec.TASK
MODEL_FILE = "model.onnx"
# Seed of the reference input stored with every export (documented, so anyone
# can regenerate it with seedlock.core.rng.SeedStream(REFERENCE_SEED)).
REFERENCE_SEED = 20201


def reference_input(size: int) -> np.ndarray:
    """The seeded float32 input stored with the export (1x3xSxS, standard normal)."""
    return SeedStream(REFERENCE_SEED).normal((1, 3, size, size)).astype(np.float32)


def checkpoint_spec(ckpt: Checkpoint, size: int | None = None) -> SegmentationSpec:
    """The spec a segmentation checkpoint exports to (``size``: serve at another letterbox size)."""
    pre = ckpt.preprocess
    spec = SegmentationSpec(int(pre["size"]), tuple(pre["mean"]), tuple(pre["std"]), tuple(ckpt.labels), int(pre["divisor"]))
    if size is not None:
        if size < spec.divisor or size % spec.divisor:
            raise UserError(f"--size must be a positive multiple of {spec.divisor} for this model, got {size}")
        spec = spec.with_size(size)
    return spec


def parity_cases(ckpt: Checkpoint, spec: SegmentationSpec | None = None) -> dict[str, np.ndarray]:
    spec = spec or checkpoint_spec(ckpt)
    size, div = spec.size, spec.divisor
    stream = SeedStream(REFERENCE_SEED, 1)
    from seedlock.train.data.scenes import make_scene

    images = [make_scene(ckpt.seed + 1, i, size)[0] for i in range(2)]
    return {
        "random b1": stream.normal((1, 3, size, size)).astype(np.float32),
        "random b3": stream.normal((3, 3, size, size)).astype(np.float32),
        "random b2 non-square": stream.normal((2, 3, 2 * div, 3 * div)).astype(np.float32),
        "dataset scenes b2": spec.preprocess(images)[0],
    }


def torch_graphs(checkpoint: Checkpoint) -> dict[str, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]]:
    """The checkpoint's graphs in torch, as ``feeds -> outputs`` (for ``export verify --checkpoint``)."""
    model = as_checkpoint(checkpoint, TASK).model.eval()

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"logits": model(torch.from_numpy(feeds["image"])).numpy()}

    return {"model": run}


def export_segmenter(
    checkpoint: str | Path | Checkpoint,
    repository: str | Path,
    name: str = "segmenter",
    version: int = 1,
    overwrite: bool = False,
    tolerance: float = TOLERANCE,
    log: Callable[[str], None] = print,
    size: int | None = None,
    intra_op_threads: int = DEFAULT_MODEL_THREADS,
) -> ExportResult:
    """Export, verify, and write ``<repository>/<name>/<version>/``.

    ``size`` sets the square input the server letterboxes images to (default:
    the training size). The U-Net is fully convolutional, so any multiple of
    ``2**depth`` works; a larger size keeps more detail of large images.
    """
    check_target(repository, name, version, overwrite)  # fail before the slow part
    ckpt = as_checkpoint(checkpoint, TASK)
    spec = checkpoint_spec(ckpt, size)
    model = ckpt.model.eval()
    div = spec.divisor
    h, w = Dim("h", min=1, max=8192 // div), Dim("w", min=1, max=8192 // div)
    dynamic = ({0: Dim("batch", min=1, max=4096), 2: div * h, 3: div * w},)
    example = torch.zeros(1, 3, spec.size, spec.size)
    log(f"exporting {ckpt.path} -> ONNX (opset 18, dynamic batch/height/width, multiples of {div})")
    model_bytes = serialize(to_onnx(model, (example,), ["image"], ["logits"], dynamic))
    session = create_session(model_bytes)  # the server's session settings
    run_torch = torch_graphs(ckpt)["model"]
    rows = parity.run_cases(
        parity_cases(ckpt, spec),
        lambda x: run_torch({"image": x})["logits"],
        lambda x: session.run(["logits"], {"image": x})[0],
        tolerance,
    )
    parity.require(rows, log)
    ref_in = {"image": reference_input(2 * div)}
    reference, ref_files = graph_reference({"model": (ref_in, run_torch(ref_in))}, tolerance, REFERENCE_SEED)
    metrics = {**ckpt.metrics, "export_parity_max_abs": max(r.max_abs for r in rows)}
    manifest = Manifest(
        name=name,
        version=version,
        task=TASK,
        graphs={
            "model": GraphSpec(
                file=MODEL_FILE,
                inputs=[TensorSpec("image", "float32", [-1, 3, -1, -1])],
                outputs=[TensorSpec("logits", "float32", [-1, spec.num_classes, -1, -1])],
            )
        },
        **spec.to_manifest(),
        seed=ckpt.seed,
        config=ckpt.config,
        metrics=metrics,
        tools=tool_versions(),
        reference=reference,
    )
    folder = write_model_version(repository, manifest, {MODEL_FILE: model_bytes, **ref_files}, overwrite=overwrite, intra_op_threads=intra_op_threads)
    log(f"wrote {folder} (digest {manifest.digest[:16]}…)")
    return ExportResult(folder, manifest, rows)
