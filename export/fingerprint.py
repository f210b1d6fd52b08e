"""Export a fingerprint-DCGAN checkpoint into the model repository.

The exported graph is the checkpoint's generator bank:

    latent  float32 (N, Z)        ->  image  float32 (N, G, S, S) in [-1, 1]

with ``G = 1`` for a DCGAN trained on all qualities and one slice per quality
for per-quality DCGANs (``postprocess["generators"]`` names the slices). As
for the segmenter, the export verifies itself before writing anything: torch
eager vs ONNX Runtime on latents drawn exactly as the server draws them
(``seedlock.core.fingerprints.latents``), several batch sizes, worst absolute
error within ``tolerance`` (1e-4) or nothing is written. A seeded reference
latent batch and torch's output on it are stored beside the model so
``seedlock export verify`` can re-check parity without the checkpoint.

What the server does with the manifest (all in ``seedlock.core.fingerprints``):
``z = latents(seed, count, preprocess["latent_dim"])`` (refusing ``count >
preprocess["max_count"]``), run ``model``, then
``to_uint8(select_generator(image, generator_index(postprocess, quality)))``
and one grey PNG per image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.export import Dim

from seedlock.core.fingerprints import (
    DEFAULT_MAX_COUNT,
    LATENT_STREAM,
    OUTPUT_RANGE,
    QUALITY_DESCRIPTIONS,
    TO_UINT8_RULE,
    latents,
    to_uint8,
)
from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.export import parity
from seedlock.export.onnx_export import ExportError, serialize, to_onnx
from seedlock.export.repository import write_model_version
from seedlock.export.segmenter import ExportResult, cpu_session, npy_bytes, tool_versions
from seedlock.train.fingerprint_gan import GeneratorCheckpoint, load_generator_checkpoint

TASK = "fingerprint-generation"
MODEL_FILE = "model.onnx"
REFERENCE_INPUT = "reference_input.npy"
REFERENCE_OUTPUT = "reference_output.npy"
TOLERANCE = 1e-4
# Seed of the stored reference latents: latents(REFERENCE_SEED, REFERENCE_COUNT, latent_dim).
REFERENCE_SEED = 20201
REFERENCE_COUNT = 4
MAX_BATCH = 4096


def parity_cases(ckpt: GeneratorCheckpoint) -> dict[str, np.ndarray]:
    """Latent batches for the torch vs ONNX Runtime check, drawn as the server draws them."""
    z = ckpt.model_config.latent_dim
    return {
        "reference seed b1": latents(REFERENCE_SEED, 1, z),
        "reference seed b3": latents(REFERENCE_SEED, 3, z),
        "seed 0 b16": latents(0, 16, z),
        f"training seed {ckpt.seed} b8": latents(ckpt.seed, 8, z),
        "large |z| b2": 4.0 * latents(REFERENCE_SEED + 1, 2, z),
    }


def build_manifest(ckpt: GeneratorCheckpoint, name: str, version: int, rows: list[parity.ParityRow], uint8_mismatch: int, max_count: int) -> Manifest:
    mc = ckpt.model_config
    size, zdim, gens = mc.image_size, mc.latent_dim, list(ckpt.generators)
    train_metrics = {k: v for k, v in ckpt.metrics.items() if k != "history"}  # the history stays in the run folder
    metrics: dict[str, Any] = {
        **train_metrics,
        "export_parity_max_abs": max(r.max_abs for r in rows),
        "export_uint8_mismatch_pixels": int(uint8_mismatch),
    }
    return Manifest(
        name=name,
        version=version,
        task=TASK,
        graphs={
            "model": GraphSpec(
                file=MODEL_FILE,
                inputs=[TensorSpec("latent", "float32", [-1, zdim])],
                outputs=[TensorSpec("image", "float32", [-1, len(gens), size, size])],
            )
        },
        preprocess={
            "latent_dim": zdim,
            "latent_distribution": "normal",
            "latent_stream": LATENT_STREAM,
            "latent_rule": (
                "z = seedlock.core.fingerprints.latents(seed, count, latent_dim) = "
                f"SeedStream(seed, {LATENT_STREAM}).normal((count, latent_dim)).astype(float32); "
                "the same (seed, count) gives the same latents"
            ),
            "max_count": int(max_count),
        },
        postprocess={
            "range": list(OUTPUT_RANGE),
            "image_size": size,
            "generator_axis": 1,
            "generators": gens,
            "per_quality": ckpt.per_quality,
            "qualities": list(ckpt.qualities),
            "quality_descriptions": {q: QUALITY_DESCRIPTIONS[q] for q in ckpt.qualities if q in QUALITY_DESCRIPTIONS},
            "to_uint8": TO_UINT8_RULE,
            "steps": [
                "g = seedlock.core.fingerprints.generator_index(postprocess, quality)  # 0 unless per_quality",
                "gray = seedlock.core.fingerprints.to_uint8(select_generator(image, g))  # uint8 (count, S, S)",
                "one single-channel PNG per image: seedlock.core.imaging.encode_png(gray[i])",
            ],
            "encoding": "png, 8-bit grey, dark ridges on a light background",
        },
        labels=gens,
        seed=ckpt.seed,
        config=ckpt.config,
        metrics=metrics,
        tools=tool_versions(),
    )


def export_generator(
    checkpoint: str | Path,
    repository: str | Path,
    name: str = "fingerprint-gan",
    version: int = 1,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    tolerance: float = TOLERANCE,
    max_count: int = DEFAULT_MAX_COUNT,
) -> ExportResult:
    """Export, verify (torch vs ONNX Runtime), then write ``<repository>/<name>/<version>/``."""
    if max_count < 1:
        raise ExportError(f"max_count must be >= 1, got {max_count}")
    ckpt = load_generator_checkpoint(checkpoint)
    module = ckpt.generator.eval()
    zdim = ckpt.model_config.latent_dim
    example = torch.from_numpy(latents(REFERENCE_SEED, 2, zdim))
    dynamic = ({0: Dim("batch", min=1, max=MAX_BATCH)},)
    log(f"exporting {ckpt.path} -> ONNX (generators: {', '.join(ckpt.generators)}; dynamic batch)")
    proto = to_onnx(module, (example,), ["latent"], ["image"], dynamic)
    model_bytes = serialize(proto)
    session = cpu_session(model_bytes)

    def run_torch(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(z)).numpy()

    def run_ort(z: np.ndarray) -> np.ndarray:
        return session.run(["image"], {"latent": z})[0]

    cases = parity_cases(ckpt)
    rows = parity.run_cases(cases, run_torch, run_ort, tolerance)
    log(parity.format_table(rows))
    failed = [r for r in rows if not r.ok]
    if failed:
        raise ExportError(
            f"ONNX Runtime differs from torch by {max(r.max_abs for r in failed):.3e} > {tolerance:.0e}; nothing was written"
        )
    # Rounding to uint8 can flip a grey level where torch and ORT straddle a .5 boundary; record how often.
    mismatch = sum(int((to_uint8(run_torch(z)) != to_uint8(run_ort(z))).sum()) for z in cases.values())
    ref_in = latents(REFERENCE_SEED, REFERENCE_COUNT, zdim)
    ref_out = run_torch(ref_in)
    manifest = build_manifest(ckpt, name, version, rows, mismatch, max_count)
    manifest.preprocess["reference"] = {
        "input": REFERENCE_INPUT,
        "output": REFERENCE_OUTPUT,
        "seed": REFERENCE_SEED,
        "count": REFERENCE_COUNT,
        "tolerance": tolerance,
    }
    folder = write_model_version(
        repository,
        manifest,
        {MODEL_FILE: model_bytes, REFERENCE_INPUT: npy_bytes(ref_in), REFERENCE_OUTPUT: npy_bytes(ref_out)},
        overwrite=overwrite,
    )
    log(f"wrote {folder} (digest {manifest.digest[:16]}…)")
    return ExportResult(folder, manifest, rows)
