"""Export a fingerprint-DCGAN checkpoint into the model repository.

The exported graph is the checkpoint's generator bank:

    latent  float32 (N, Z)        ->  image  float32 (N, G, S, S) in [-1, 1]

with ``G = 1`` for a DCGAN trained on all qualities and one slice per quality
for per-quality DCGANs (``postprocess["generators"]`` names the slices). As
for the segmenter, the export verifies itself before writing anything: torch
eager vs ONNX Runtime (a session built as the server builds it) on latents
drawn exactly as the server draws them (``FingerprintSpec.latents``), several
batch sizes, worst absolute error within ``tolerance`` (1e-4) or nothing is
written. A seeded reference latent batch and torch's output on it are stored
beside the model (the manifest's ``reference``), so ``seedlock export verify``
can re-check parity without the checkpoint, and re-check that today's
``latents`` still draws the stored batch for its seed.

What the server does with the manifest is :class:`FingerprintSpec`:
``z = spec.latents(seed, count)`` (refusing ``count > spec.max_count``), run
``model``, then ``spec.postprocess(image, g)`` and one grey PNG per image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.export import Dim

from seedlock.core.errors import UserError
from seedlock.core.fingerprints import DEFAULT_MAX_COUNT, FingerprintSpec, latents, to_uint8
from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.core.sessions import DEFAULT_MODEL_THREADS, create_session
from seedlock.export import parity
from seedlock.export.common import TOLERANCE, ExportResult, as_checkpoint, check_target, graph_reference, reference_file, tool_versions
from seedlock.export.onnx_export import serialize, to_onnx
from seedlock.export.repository import write_model_version
from seedlock.train.checkpoint import Checkpoint
from seedlock.train.fingerprint_gan import GeneratorCheckpoint

TASK = FingerprintSpec.TASK
MODEL_FILE = "model.onnx"
# Seed of the stored reference latents: latents(REFERENCE_SEED, REFERENCE_COUNT, latent_dim).
REFERENCE_SEED = 20201
REFERENCE_COUNT = 4
MAX_BATCH = 4096

GraphFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def checkpoint_spec(ckpt: GeneratorCheckpoint, max_count: int = DEFAULT_MAX_COUNT) -> FingerprintSpec:
    """The spec a fingerprint-GAN checkpoint exports to."""
    mc = ckpt.model_config
    return FingerprintSpec(
        latent_dim=mc.latent_dim, image_size=mc.image_size, generators=tuple(ckpt.generators),
        qualities=tuple(ckpt.qualities), max_count=int(max_count),
    )  # fmt: skip


def parity_cases(spec: FingerprintSpec, seed: int) -> dict[str, np.ndarray]:
    """Latent batches for the torch vs ONNX Runtime check, drawn as the server draws them."""
    return {
        "reference seed b1": spec.latents(REFERENCE_SEED, 1),
        "reference seed b3": spec.latents(REFERENCE_SEED, 3),
        "seed 0 b16": spec.latents(0, 16),
        f"training seed {seed} b8": spec.latents(seed, 8),
        "large |z| b2": 4.0 * spec.latents(REFERENCE_SEED + 1, 2),
    }


def torch_graphs(checkpoint: str | Path | Checkpoint) -> dict[str, GraphFn]:
    """The checkpoint's graph in torch, as ``feeds -> outputs`` (for ``export verify --checkpoint``)."""
    bank = as_checkpoint(checkpoint, TASK).model.eval()

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"image": bank(torch.from_numpy(feeds["latent"])).numpy()}

    return {"model": run}


def build_manifest(ckpt: GeneratorCheckpoint, spec: FingerprintSpec, name: str, version: int,
                   rows: list[parity.ParityRow], uint8_mismatch: int, reference: dict) -> Manifest:  # fmt: skip
    train_metrics = {k: v for k, v in ckpt.metrics.items() if k != "history"}  # the history stays in the run folder
    metrics = {
        **train_metrics,
        "export_parity_max_abs": max(r.max_abs for r in rows),
        "export_uint8_mismatch_pixels": int(uint8_mismatch),
    }
    size = spec.image_size
    return Manifest(
        name=name,
        version=version,
        task=TASK,
        graphs={
            "model": GraphSpec(
                file=MODEL_FILE,
                inputs=[TensorSpec(spec.input_name, "float32", [-1, spec.latent_dim])],
                outputs=[TensorSpec(spec.output_name, "float32", [-1, len(spec.generators), size, size])],
            )
        },
        **spec.to_manifest(),
        seed=ckpt.seed,
        config=ckpt.config,
        metrics=metrics,
        tools=tool_versions(),
        reference=reference,
    )


def export_generator(
    checkpoint: str | Path | Checkpoint,
    repository: str | Path,
    name: str = "fingerprint-gan",
    version: int = 1,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    tolerance: float = TOLERANCE,
    max_count: int = DEFAULT_MAX_COUNT,
    intra_op_threads: int = DEFAULT_MODEL_THREADS,
) -> ExportResult:
    """Export, verify (torch vs ONNX Runtime), then write ``<repository>/<name>/<version>/``.

    ``max_count``: the most images one Generate request may ask for."""
    if not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 1:
        raise UserError(f"--max-count must be a positive integer, got {max_count!r}")
    check_target(repository, name, version, overwrite)  # fail before the slow part
    ckpt = GeneratorCheckpoint.of(as_checkpoint(checkpoint, TASK))
    spec = checkpoint_spec(ckpt, max_count)
    bank = ckpt.generator.eval()
    example = torch.from_numpy(spec.latents(REFERENCE_SEED, 2))
    dynamic = ({0: Dim("batch", min=1, max=MAX_BATCH)},)
    log(f"exporting {ckpt.path} -> ONNX (generators: {', '.join(spec.generators)}; dynamic batch)")
    model_bytes = serialize(to_onnx(bank, (example,), [spec.input_name], [spec.output_name], dynamic))
    session = create_session(model_bytes)  # the server's session settings
    run_torch = torch_graphs(ckpt.checkpoint)["model"]

    def torch_image(z: np.ndarray) -> np.ndarray:
        return run_torch({spec.input_name: z})[spec.output_name]

    def ort_image(z: np.ndarray) -> np.ndarray:
        return session.run([spec.output_name], {spec.input_name: z})[0]

    cases = parity_cases(spec, ckpt.seed)
    rows = parity.run_cases(cases, torch_image, ort_image, tolerance)
    parity.require(rows, log)
    # Rounding to uint8 can flip a grey level where torch and ORT straddle a .5 boundary; record how often.
    mismatch = sum(int((to_uint8(torch_image(z)) != to_uint8(ort_image(z))).sum()) for z in cases.values())
    ref_in = {spec.input_name: latents(REFERENCE_SEED, REFERENCE_COUNT, spec.latent_dim)}
    # The task-level check: `export verify` redraws these latents from their seed (FingerprintSpec.check_reference).
    task_ref = {"latents": {"seed": REFERENCE_SEED, "count": REFERENCE_COUNT, "file": reference_file("model", spec.input_name)}}
    reference, ref_files = graph_reference({"model": (ref_in, run_torch(ref_in))}, tolerance, REFERENCE_SEED, task_ref)
    manifest = build_manifest(ckpt, spec, name, version, rows, mismatch, reference)
    folder = write_model_version(repository, manifest, {MODEL_FILE: model_bytes, **ref_files}, overwrite=overwrite, intra_op_threads=intra_op_threads)
    log(f"wrote {folder} (digest {manifest.digest[:16]}…)")
    return ExportResult(folder, manifest, rows, details={"uint8_mismatch_pixels": mismatch})
