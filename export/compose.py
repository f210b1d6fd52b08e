"""Export a composer checkpoint: encoder + one decoder step, verified, into the repository.

    <repository>/<name>/<version>/encoder.onnx        events (B, L, 2) int64, genre (B,) int64 -> h, c, memory
    <repository>/<name>/<version>/decoder_step.onnx   event (B, 2), genre, h, c, memory -> pitch_logits, duration_logits, h_out, c_out
    <repository>/<name>/<version>/manifest.json       graphs {"encoder", "decoder_step"}, genres, primers, sampling limits
    <repository>/<name>/<version>/reference.*.npy     seeded inputs of both graphs and torch's outputs on them

The recurrent state is explicit: ``h`` and ``c`` go in and come out of every
step (``c`` is carried unchanged for GRU cells). The ONNX exporter drops
inputs a graph does not use (an unconditioned model's ``genre``, a vanilla
decoder's ``memory``), so the manifest, the stored reference and every feed
name only the inputs each graph really has.

Nothing is written unless both checks pass:

1. parity: torch eager vs ONNX Runtime (sessions built as the server builds
   them) on seeded random tokens, batch 1 and 3, every output within
   ``tolerance`` (1e-4);
2. end to end: the shared numpy sampler (:mod:`seedlock.core.music_sampling`)
   driven by the torch step and by the ORT step gives the same melody for
   several seeds and strategies. One such melody is stored as the manifest's
   ``reference["task"]``, which ``seedlock export verify`` regenerates.

:class:`~seedlock.core.composition.GraphComposer` is the torch-free
generation path the server runs too, so the export check runs the server's
own generation code. The torch imports of this module happen inside its
functions: importing it costs no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from seedlock.core import music_events as me
from seedlock.core import music_sampling as ms
from seedlock.core.composition import (
    ENCODER,
    ENCODER_INPUTS,
    ENCODER_OUTPUTS,
    STEP,
    STEP_INPUTS,
    STEP_OUTPUTS,
    CompositionSpec,
    GraphComposer,
)
from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.core.rng import SeedStream
from seedlock.core.sessions import DEFAULT_MODEL_THREADS
from seedlock.export.common import TOLERANCE, ExportResult, as_checkpoint, check_target, graph_reference, tool_versions
from seedlock.export.errors import ExportError

if TYPE_CHECKING:
    from seedlock.train.checkpoint import Checkpoint

TASK = CompositionSpec.TASK
ENCODER_FILE = "encoder.onnx"
STEP_FILE = "decoder_step.onnx"
PARITY_SEED = 31337
# Seed of the graph inputs stored with every export (SeedStream(REFERENCE_SEED)
# regenerates them; see reference_graphs).
REFERENCE_SEED = 20203
# (seed, params) pairs the end-to-end check generates with, on torch and on ORT.
E2E_CASES: tuple[tuple[int, ms.SamplingParams], ...] = (
    (7, ms.SamplingParams("greedy")),
    (7, ms.SamplingParams("top_k", temperature=1.0, top_k=8)),
    (11, ms.SamplingParams("temperature", temperature=0.9)),
)
E2E_LENGTH = 48

Feeds = dict[str, np.ndarray]
GraphFn = Callable[[Feeds], Feeds]


# -- the spec and the graphs' tensors ---------------------------------------------
def checkpoint_spec(ckpt: "Checkpoint") -> CompositionSpec:
    """The spec a composition checkpoint exports to: the training-time
    preprocess plus the model's vocabulary and the sampling limits."""
    pre, cfg = ckpt.preprocess, ckpt.model.cfg
    try:
        return CompositionSpec(
            genres=tuple(ckpt.labels), window=int(pre["window"]),
            primers={str(g): tuple((int(p), int(d)) for p, d in v) for g, v in dict(pre["primers"]).items()},
            genre_input=bool(cfg.num_genres), conditioned=bool(pre.get("conditioned", cfg.num_genres)),
            horizon=int(pre.get("horizon", cfg.horizon)), vocab=str(pre.get("vocab", me.VOCAB_VERSION)),
            pitch_low=int(pre.get("pitch_low", me.PITCH_LOW)), pitch_high=int(pre.get("pitch_high", me.PITCH_HIGH)),
            durations=tuple(float(v) for v in pre.get("durations", me.DURATIONS)),
            num_pitches=cfg.num_pitches, num_durations=cfg.num_durations,
        )  # fmt: skip
    except KeyError as exc:
        raise ExportError(f"{ckpt.path}: its preprocess lacks {exc.args[0]!r}; retrain it with `seedlock train compose`") from None
    except ValueError as exc:
        raise ExportError(f"{ckpt.path}: {exc}") from None


def _shapes(ckpt: "Checkpoint") -> tuple[int, int, int, int]:
    """(window L, hidden H, memory length M, genre count G) of a composer checkpoint."""
    cfg = ckpt.model.cfg
    window = int(ckpt.preprocess["window"])
    return window, cfg.hidden, window if cfg.decoder == "multiway" else 1, max(len(ckpt.labels), 1)


def tensor_specs(ckpt: "Checkpoint") -> dict[str, tuple[list[TensorSpec], list[TensorSpec]]]:
    """Every tensor each graph is exported with (before unused inputs are dropped)."""
    L, H, M, _ = _shapes(ckpt)
    cfg = ckpt.model.cfg
    state = [TensorSpec("h", "float32", [-1, H]), TensorSpec("c", "float32", [-1, H]), TensorSpec("memory", "float32", [-1, M, H])]
    return {
        ENCODER: ([TensorSpec("events", "int64", [-1, L, 2]), TensorSpec("genre", "int64", [-1])], state),
        STEP: (
            [TensorSpec("event", "int64", [-1, 2]), TensorSpec("genre", "int64", [-1]), *state],
            [TensorSpec("pitch_logits", "float32", [-1, cfg.num_pitches]),
             TensorSpec("duration_logits", "float32", [-1, cfg.num_durations]),
             TensorSpec("h_out", "float32", [-1, H]), TensorSpec("c_out", "float32", [-1, H])],
        ),
    }  # fmt: skip


def only_inputs(session: Any, feeds: Mapping[str, np.ndarray]) -> Feeds:
    """The feeds a session's graph takes (ONNX Runtime refuses any other name)."""
    names = {i.name for i in session.get_inputs()}
    return {k: v for k, v in feeds.items() if k in names}


def only_tensors(session: Any, tensors: list[TensorSpec]) -> list[TensorSpec]:
    """The declared inputs the exported graph kept (the server checks the manifest names exactly these)."""
    names = {i.name for i in session.get_inputs()}
    return [t for t in tensors if t.name in names]


def run_session(session: Any, feeds: Mapping[str, np.ndarray], outputs: tuple[str, ...]) -> Feeds:
    return dict(zip(outputs, session.run(list(outputs), only_inputs(session, feeds))))


# -- torch ----------------------------------------------------------------------
def torch_graphs(checkpoint: "str | Path | Checkpoint") -> dict[str, GraphFn]:
    """The checkpoint's two graphs in torch, as ``feeds -> outputs`` (the
    export's parity reference and ``export verify --checkpoint``). An input
    the ONNX graph dropped is unused, so zeros of its shape stand in for it."""
    import torch

    from seedlock.train import composer as comp

    ckpt = as_checkpoint(checkpoint, TASK)
    model = ckpt.model.eval()
    _, H, M, _ = _shapes(ckpt)
    encoder, step = comp.EncoderGraph(model), comp.DecoderStepGraph(model)

    def filled(feeds: Mapping[str, np.ndarray], names: tuple[str, ...]) -> list[torch.Tensor]:
        batch = next(iter(feeds.values())).shape[0]
        stand_in = {"genre": np.zeros(batch, np.int64), "memory": np.zeros((batch, M, H), np.float32),
                    "c": np.zeros((batch, H), np.float32)}  # fmt: skip
        return [torch.from_numpy(np.ascontiguousarray(feeds[n] if n in feeds else stand_in[n])) for n in names]

    def run(graph: torch.nn.Module, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> GraphFn:
        def call(feeds: Feeds) -> Feeds:
            with torch.no_grad():
                return {n: t.numpy() for n, t in zip(outputs, graph(*filled(feeds, inputs)))}

        return call

    return {ENCODER: run(encoder, ENCODER_INPUTS, ENCODER_OUTPUTS), STEP: run(step, STEP_INPUTS, STEP_OUTPUTS)}


# -- seeded inputs ------------------------------------------------------------------
def random_tokens(stream: SeedStream, batch: int, length: int) -> np.ndarray:
    return np.stack([stream.integers(0, me.NUM_PITCHES, (batch, length)), stream.integers(0, me.NUM_DURATIONS, (batch, length))], -1)


def seeded_feeds(stream: SeedStream, batch: int, window: int, genres: int, encode: GraphFn) -> tuple[Feeds, Feeds]:
    """Seeded encoder feeds, and decoder-step feeds continuing from ``encode``'s answer on them."""
    enc = {"events": random_tokens(stream, batch, window), "genre": stream.integers(0, genres, (batch,))}
    state = encode(enc)
    step = {"event": random_tokens(stream, batch, 1)[:, 0], "genre": enc["genre"],
            "h": state["h"], "c": state["c"], "memory": state["memory"]}  # fmt: skip
    return enc, step


def reference_graphs(ckpt: "Checkpoint", graphs: Mapping[str, GraphFn], sessions: Mapping[str, Any]) -> dict[str, tuple[Feeds, Feeds]]:
    """Per graph, the seeded inputs it has (batch 2) and torch's outputs on them: what the manifest stores."""
    L, _, _, G = _shapes(ckpt)
    enc, step = seeded_feeds(SeedStream(REFERENCE_SEED), 2, L, G, graphs[ENCODER])
    out: dict[str, tuple[Feeds, Feeds]] = {}
    for role, feeds in ((ENCODER, enc), (STEP, step)):
        kept = only_inputs(sessions[role], feeds)
        out[role] = (kept, graphs[role](kept))
    return out


# -- checks -------------------------------------------------------------------------
def parity_rows(ckpt: "Checkpoint", graphs: Mapping[str, GraphFn], sessions: Mapping[str, Any], tolerance: float) -> list:
    """torch vs ONNX Runtime on both graphs, seeded tokens, batch 1 and 3."""
    from seedlock.export import parity

    L, _, _, G = _shapes(ckpt)
    stream = SeedStream(PARITY_SEED)
    rows = []
    for b in (1, 3):
        enc, step = seeded_feeds(stream, b, L, G, graphs[ENCODER])
        for role, feeds, outputs in ((ENCODER, enc, ENCODER_OUTPUTS), (STEP, step, STEP_OUTPUTS)):
            want = graphs[role](feeds)
            got = run_session(sessions[role], feeds, outputs)
            rows += [parity.compare(f"{role} {n} b{b}", want[n], got[n], tolerance) for n in outputs]
    return rows


def end_to_end(ckpt: "Checkpoint", composer: GraphComposer, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The same melody from the torch step and the ORT step, for each of :data:`E2E_CASES`."""
    from seedlock.train import composer as comp

    model = ckpt.model.eval()
    genre = composer.genres[0]
    primer = composer.primer_for(genre)
    checked = []
    for seed, params in E2E_CASES:
        state = comp.torch_initial_state(model, ms.prepare_primer(primer, composer.window), 0)
        ref = ms.generate(comp.torch_step(model, 0), primer[-1], state, E2E_LENGTH, params, seed)
        got = composer.compose(genre, E2E_LENGTH, params, seed)
        same = bool(np.array_equal(ref, got))
        checked.append({"seed": seed, "strategy": params.strategy, "same": same})
        log(f"end to end: seed {seed} {params.strategy:<11} torch vs onnxruntime melody: {'SAME' if same else 'DIFFERENT'}")
        if not same:
            first = int(np.argmax(np.any(ref != got, axis=1)))
            raise ExportError(f"seed {seed} ({params.strategy}): ORT melody departs from torch's at event {first}; nothing was written")
    return checked


def task_reference(composer: GraphComposer) -> dict[str, Any]:
    """The melody ``export verify`` regenerates (``CompositionSpec.check_reference``)."""
    seed, params = E2E_CASES[1]
    genre = composer.genres[0]
    return {
        "genre": genre, "seed": seed, "length": E2E_LENGTH,
        "sampling": {"strategy": params.strategy, "temperature": params.temperature, "top_k": params.top_k},
        "events": composer.compose(genre, E2E_LENGTH, params, seed).tolist(),
    }  # fmt: skip


# -- export --------------------------------------------------------------------------
def _onnx_graphs(ckpt: "Checkpoint") -> tuple[bytes, bytes]:
    import torch
    from torch.export import Dim

    from seedlock.export.onnx_export import serialize, to_onnx
    from seedlock.train import composer as comp

    model = ckpt.model.eval()
    L, H, M, _ = _shapes(ckpt)
    batch = Dim("batch", min=1, max=1024)
    # batch 2 in the examples: torch.export specializes a size-1 axis to a constant
    enc_proto = to_onnx(
        comp.EncoderGraph(model), (torch.zeros(2, L, 2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64)),
        list(ENCODER_INPUTS), list(ENCODER_OUTPUTS), ({0: batch}, {0: batch}),
    )
    step_example = (torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64),
                    torch.zeros(2, H), torch.zeros(2, H), torch.zeros(2, M, H))  # fmt: skip
    step_proto = to_onnx(
        comp.DecoderStepGraph(model), step_example, list(STEP_INPUTS), list(STEP_OUTPUTS), ({0: batch},) * len(STEP_INPUTS),
    )
    return serialize(enc_proto), serialize(step_proto)


def export_composer(
    checkpoint: "str | Path | Checkpoint",
    repository: str | Path,
    name: str = "composer",
    version: int = 1,
    overwrite: bool = False,
    tolerance: float = TOLERANCE,
    log: Callable[[str], None] = print,
    intra_op_threads: int = DEFAULT_MODEL_THREADS,
) -> ExportResult:
    """Export, verify, and write ``<repository>/<name>/<version>/``; the
    end-to-end melodies checked are the result's ``details["end_to_end"]``."""
    from seedlock.core.sessions import create_session
    from seedlock.export import parity
    from seedlock.export.repository import write_model_version

    check_target(repository, name, version, overwrite)  # fail before the slow part
    ckpt = as_checkpoint(checkpoint, TASK)
    cfg = ckpt.model.cfg
    if cfg.decoder == "none":
        raise ExportError(f"{ckpt.path} is a bi-directional RNN with no decoder (--decoder none, the Table 21 (a) ablation), "
                          "which predicts no continuation step to serve; export a composer trained with --decoder multiway or vanilla")  # fmt: skip
    spec = checkpoint_spec(ckpt)
    log(f"exporting {ckpt.path} -> ONNX: encoder ({spec.window} events) + decoder step ({cfg.cell}, hidden {cfg.hidden}, {cfg.decoder})")
    enc_bytes, step_bytes = _onnx_graphs(ckpt)
    sessions = {ENCODER: create_session(enc_bytes), STEP: create_session(step_bytes)}  # the server's session settings
    graphs = torch_graphs(ckpt)

    rows = parity_rows(ckpt, graphs, sessions, tolerance)
    log(parity.format_table(rows))
    failed = [r for r in rows if not r.ok]
    if failed:
        raise ExportError(f"ONNX Runtime differs from torch by {max(r.max_abs for r in failed):.3e} > {tolerance:.0e}; nothing was written")

    composer = GraphComposer(sessions[ENCODER], sessions[STEP], spec)
    checked = end_to_end(ckpt, composer, log)
    reference, ref_files = graph_reference(
        reference_graphs(ckpt, graphs, sessions), tolerance, REFERENCE_SEED, task=task_reference(composer)
    )
    specs = tensor_specs(ckpt)
    manifest = Manifest(
        name=name, version=version, task=TASK,
        graphs={role: GraphSpec(file, list(only_tensors(sessions[role], specs[role][0])), specs[role][1])
                for role, file in ((ENCODER, ENCODER_FILE), (STEP, STEP_FILE))},
        **spec.to_manifest(), seed=ckpt.seed, config=ckpt.config,
        metrics={**ckpt.metrics, "export_parity_max_abs": max(r.max_abs for r in rows), "export_end_to_end": checked},
        tools=tool_versions(), reference=reference,
    )  # fmt: skip
    files = {ENCODER_FILE: enc_bytes, STEP_FILE: step_bytes, **ref_files}
    folder = write_model_version(repository, manifest, files, overwrite=overwrite, intra_op_threads=intra_op_threads)
    log(f"wrote {folder} (digest {manifest.digest[:16]}…)")
    return ExportResult(folder, manifest, rows, {"end_to_end": checked})


__all__ = ["export_composer", "torch_graphs", "checkpoint_spec", "ENCODER_FILE", "STEP_FILE", "REFERENCE_SEED"]
