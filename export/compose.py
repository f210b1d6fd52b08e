"""Export a composer checkpoint: encoder + one decoder step, verified, into the repository.

    <repository>/<name>/<version>/encoder.onnx        events (B, L, 2) int64, genre (B,) int64 -> h, c, memory
    <repository>/<name>/<version>/decoder_step.onnx   event (B, 2), genre, h, c, memory -> pitch_logits, duration_logits, h_out, c_out
    <repository>/<name>/<version>/manifest.json       graphs {"encoder", "decoder_step"}, genres, primers, sampling limits

The recurrent state is explicit: ``h`` and ``c`` go in and come out of every
step (``c`` is carried unchanged for GRU cells; the exporter may drop unused
inputs, so feeds are built from each session's own input names).

Nothing is written unless both checks pass:

1. parity: torch eager vs ONNX Runtime on seeded random tokens, batch 1 and
   3, every output within ``tolerance`` (1e-4);
2. end to end: the shared numpy sampler (:mod:`seedlock.core.music_sampling`)
   driven by the torch step and by the ORT step gives the same melody for
   several seeds and strategies. One such melody is stored in the manifest
   (``postprocess.reference``) so the server can be checked against it.

:class:`~seedlock.core.music_generation.GraphComposer` is the torch-free
generation path the server runs too, so the export check runs the server's
own generation code. The torch imports of this module happen inside
:func:`export_composer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort

from seedlock.core import music_events as me
from seedlock.core import music_sampling as ms
from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.core.rng import SeedStream
from seedlock.core.music_generation import GraphComposer

ENCODER_FILE = "encoder.onnx"
STEP_FILE = "decoder_step.onnx"
TOLERANCE = 1e-4
PARITY_SEED = 31337
# (seed, params) pairs the end-to-end check generates with, on torch and on ORT.
E2E_CASES: tuple[tuple[int, ms.SamplingParams], ...] = (
    (7, ms.SamplingParams("greedy")),
    (7, ms.SamplingParams("top_k", temperature=1.0, top_k=8)),
    (11, ms.SamplingParams("temperature", temperature=0.9)),
)
E2E_LENGTH = 48


@dataclass
class ComposeExportResult:
    folder: Path
    manifest: Manifest
    rows: list


def _session(model_bytes: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.use_deterministic_compute = True
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def _random_tokens(stream: SeedStream, batch: int, length: int) -> np.ndarray:
    return np.stack([stream.integers(0, me.NUM_PITCHES, (batch, length)), stream.integers(0, me.NUM_DURATIONS, (batch, length))], -1)


def export_composer(
    checkpoint: str | Path,
    repository: str | Path,
    name: str = "composer",
    version: int = 1,
    overwrite: bool = False,
    tolerance: float = TOLERANCE,
    log: Callable[[str], None] = print,
) -> ComposeExportResult:
    import torch
    from torch.export import Dim

    from seedlock.export import parity
    from seedlock.export.onnx_export import ExportError, serialize, to_onnx
    from seedlock.export.repository import write_model_version
    from seedlock.export.segmenter import tool_versions
    from seedlock.train import composer as comp
    from seedlock.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    if ckpt.task != "composition":
        raise ExportError(f"{checkpoint} is a {ckpt.task!r} checkpoint, not a composition one")
    model: comp.Composer = ckpt.model.eval()
    cfg = model.cfg
    L, H = int(ckpt.preprocess["window"]), cfg.hidden
    genres = list(ckpt.labels)
    G = max(len(genres), 1)
    M = L if cfg.decoder == "multiway" else 1
    batch = Dim("batch", min=1, max=1024)

    log(f"exporting {checkpoint} -> ONNX: encoder ({L} events) + decoder step ({cfg.cell}, hidden {H}, {cfg.decoder})")
    enc_proto = to_onnx(
        comp.EncoderGraph(model), (torch.zeros(2, L, 2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64)),
        ["events", "genre"], ["h", "c", "memory"], ({0: batch}, {0: batch}),
    )
    # batch 2 in the examples: torch.export specializes a size-1 axis to a constant
    step_example = (torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64),
                    torch.zeros(2, H), torch.zeros(2, H), torch.zeros(2, M, H))
    step_proto = to_onnx(
        comp.DecoderStepGraph(model), step_example, ["event", "genre", "h", "c", "memory"],
        ["pitch_logits", "duration_logits", "h_out", "c_out"], ({0: batch}, {0: batch}, {0: batch}, {0: batch}, {0: batch}),
    )
    enc_bytes, step_bytes = serialize(enc_proto), serialize(step_proto)
    enc_sess, step_sess = _session(enc_bytes), _session(step_bytes)
    enc_in = {i.name for i in enc_sess.get_inputs()}
    step_in = {i.name for i in step_sess.get_inputs()}

    # 1. parity, graph by graph
    stream = SeedStream(PARITY_SEED)
    rows = []
    for b in (1, 3):
        events = _random_tokens(stream, b, L)
        genre = stream.integers(0, G, (b,))
        with torch.no_grad():
            ref = [t.numpy() for t in model.encode(torch.from_numpy(events), torch.from_numpy(genre))]
        got = enc_sess.run(["h", "c", "memory"], {k: v for k, v in {"events": events, "genre": genre}.items() if k in enc_in})
        rows += [parity.compare(f"encoder {n} b{b}", r, g, tolerance) for n, r, g in zip(("h", "c", "memory"), ref, got)]
        event = _random_tokens(stream, b, 1)[:, 0]
        feeds = {"event": event, "genre": genre, "h": ref[0], "c": ref[1], "memory": ref[2]}
        with torch.no_grad():
            sref = [t.numpy() for t in comp.DecoderStepGraph(model)(*(torch.from_numpy(feeds[k]) for k in ("event", "genre", "h", "c", "memory")))]
        sgot = step_sess.run(["pitch_logits", "duration_logits", "h_out", "c_out"], {k: v for k, v in feeds.items() if k in step_in})
        rows += [parity.compare(f"step {n} b{b}", r, g, tolerance) for n, r, g in zip(("pitch", "duration", "h", "c"), sref, sgot)]
    log(parity.format_table(rows))
    failed = [r for r in rows if not r.ok]
    if failed:
        raise ExportError(f"ONNX Runtime differs from torch by {max(r.max_abs for r in failed):.3e} > {tolerance:.0e}; nothing was written")

    # 2. end to end: same seed, same melody through the shared sampler
    graphs = {
        "encoder": GraphSpec(ENCODER_FILE, [TensorSpec("events", "int64", [-1, L, 2]), TensorSpec("genre", "int64", [-1])],
                             [TensorSpec("h", "float32", [-1, H]), TensorSpec("c", "float32", [-1, H]), TensorSpec("memory", "float32", [-1, M, H])]),
        "decoder_step": GraphSpec(
            STEP_FILE,
            [TensorSpec("event", "int64", [-1, 2]), TensorSpec("genre", "int64", [-1]), TensorSpec("h", "float32", [-1, H]),
             TensorSpec("c", "float32", [-1, H]), TensorSpec("memory", "float32", [-1, M, H])],
            [TensorSpec("pitch_logits", "float32", [-1, cfg.num_pitches]), TensorSpec("duration_logits", "float32", [-1, cfg.num_durations]),
             TensorSpec("h_out", "float32", [-1, H]), TensorSpec("c_out", "float32", [-1, H])],
        ),
    }
    preprocess = {**ckpt.preprocess, "num_pitches": cfg.num_pitches, "num_durations": cfg.num_durations,
                  "genre_input": bool(cfg.num_genres)}
    postprocess = {"max_length": ms.MAX_LENGTH, "max_temperature": ms.MAX_TEMPERATURE, "strategies": list(ms.STRATEGIES),
                   "default_sampling": {"strategy": "top_k", "temperature": 1.0, "top_k": 8}}
    manifest = Manifest(name=name, version=version, task="composition", graphs=graphs, preprocess=preprocess,
                        postprocess=postprocess, labels=genres, seed=ckpt.seed, config=ckpt.config,
                        metrics=dict(ckpt.metrics), tools=tool_versions())
    ort_composer = GraphComposer(enc_sess, step_sess, manifest)
    genre_name = genres[0] if genres else ""
    primer = ort_composer.primer_for(genre_name)
    checked = []
    for seed, params in E2E_CASES:
        state = comp.torch_initial_state(model, ms.prepare_primer(primer, L), 0)
        ref = ms.generate(comp.torch_step(model, 0), primer[-1], state, E2E_LENGTH, params, seed)
        got = ort_composer.compose(genre_name, E2E_LENGTH, params, seed)
        same = bool(np.array_equal(ref, got))
        checked.append({"seed": seed, "strategy": params.strategy, "same": same})
        log(f"end to end: seed {seed} {params.strategy:<11} torch vs onnxruntime melody: {'SAME' if same else 'DIFFERENT'}")
        if not same:
            first = int(np.argmax(np.any(ref != got, axis=1)))
            raise ExportError(f"seed {seed} ({params.strategy}): ORT melody departs from torch's at event {first}; nothing was written")
    seed, params = E2E_CASES[1]
    manifest.postprocess["reference"] = {
        "genre": genre_name, "seed": seed, "length": E2E_LENGTH,
        "sampling": {"strategy": params.strategy, "temperature": params.temperature, "top_k": params.top_k},
        "events": ort_composer.compose(genre_name, E2E_LENGTH, params, seed).tolist(),
    }
    manifest.metrics["export_parity_max_abs"] = max(r.max_abs for r in rows)
    manifest.metrics["export_end_to_end"] = checked
    folder = write_model_version(repository, manifest, {ENCODER_FILE: enc_bytes, STEP_FILE: step_bytes}, overwrite=overwrite)
    log(f"wrote {folder} (digest {manifest.digest[:16]}…)")
    return ComposeExportResult(folder, manifest, rows)


__all__ = ["export_composer", "ComposeExportResult", "ENCODER_FILE", "STEP_FILE"]
