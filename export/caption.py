"""Export an image-caption checkpoint into the model repository: two graphs.

    <repository>/<name>/<version>/encoder.onnx        image (B,3,S,S) -> memory (B,P,M)
    <repository>/<name>/<version>/decoder_step.onnx   one decoding step (see below)
    <repository>/<name>/<version>/vocab.json          the vocabulary (also the manifest's labels)
    <repository>/<name>/<version>/reference_image.png a held-out scene; its captions are the manifest's reference.task
    <repository>/<name>/<version>/reference.<graph>.<tensor>.npy  seeded inputs of each graph and torch's outputs

The decoder step, named ``decoder_step`` in the manifest (``postprocess.decoder_mode``):

* ``recurrent`` (vanilla RNN): inputs ``tokens`` (B,1) int64 = the last token,
  ``memory``, ``h`` (and ``c`` for an LSTM), each (B,H); outputs ``log_probs``
  (B,V), ``h_out`` (and ``c_out``). The state is carried: exact, O(1) a step.
* ``prefix`` (bi-directional RNN): inputs ``tokens`` (B,t) int64 = the whole
  prefix from ``<start>``, ``memory``; output ``log_probs``. A bi-directional
  RNN's backward pass starts at the newest word, so no state can be carried;
  the step re-reads the prefix (exact, O(t) a step). No padding is needed:
  every row of a decoding batch has the same length.

Before writing anything the export checks ONNX Runtime against torch: every
graph output on random and real inputs within ``tolerance`` (1e-4), and then
end to end, greedy and beam search (driven by the one numpy decoder in
:mod:`seedlock.core.caption_decoding`) must give exactly the same captions via
ONNX Runtime as via torch on held-out scenes. ``seedlock export verify``
re-checks both levels from what is stored: every graph on its reference inputs
(within the tolerance), and the reference image's captions (exactly), through
:meth:`seedlock.core.captioning.CaptioningSpec.check_reference`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.export import Dim

from seedlock.core.caption_decoding import MAX_LENGTH, CaptionGraphs, RunGraph
from seedlock.core.captioning import DECODER_STEP, ENCODER, VOCAB_FILE, CaptioningSpec
from seedlock.core.imaging import encode_png
from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.core.rng import SeedStream
from seedlock.core.sessions import DEFAULT_MODEL_THREADS, create_session
from seedlock.core.vocab import START_ID
from seedlock.export import parity
from seedlock.export.common import TOLERANCE, ExportResult, as_checkpoint, check_target, graph_reference, tool_versions
from seedlock.export.errors import ExportError
from seedlock.export.onnx_export import serialize, to_onnx
from seedlock.export.repository import write_model_version
from seedlock.train import captioner
from seedlock.train.captioner import Captioner, CaptionerConfig, EncoderGraph, decoder_spec, step_io_names, step_module
from seedlock.train.checkpoint import Checkpoint
from seedlock.train.data.caption_scenes import VAL_OFFSET, make_caption_scene

TASK = CaptioningSpec.TASK
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder_step.onnx"
REFERENCE_IMAGE = "reference_image.png"
# Seeds of the inputs drawn for the checks (documented, so anyone can
# regenerate them): SeedStream(REFERENCE_SEED, 1) for the parity cases,
# SeedStream(REFERENCE_SEED, 2) for the graph references stored with the export.
REFERENCE_SEED = 20202
CHECK_BEAM, CHECK_N, CHECK_MAX_LENGTH = 3, 3, 20
CHECK_SCENES = 4


def checkpoint_spec(ckpt: Checkpoint) -> CaptioningSpec:
    """The spec a captioning checkpoint exports to: its decoder at the server's limits, vocabulary and preprocessing."""
    pre = ckpt.preprocess
    return CaptioningSpec(
        decoder=decoder_spec(ckpt.model.cfg), labels=tuple(ckpt.labels), size=int(pre["size"]),
        mean=tuple(float(v) for v in pre["mean"]), std=tuple(float(v) for v in pre["std"]),  # type: ignore[arg-type]
    )  # fmt: skip


def torch_graphs(checkpoint: str | Path | Checkpoint) -> dict[str, RunGraph]:
    """The checkpoint's graphs in torch, as ``feeds -> outputs`` (the export check and ``export verify --checkpoint``)."""
    graphs = captioner.torch_graphs(as_checkpoint(checkpoint, TASK).model.eval())
    return {ENCODER: graphs.encoder, DECODER_STEP: graphs.decoder_step}


def _export_graphs(model: Captioner, size: int) -> tuple[bytes, bytes]:
    cfg = model.cfg
    batch = Dim("batch", min=1, max=4096)
    # Example batches of 2 (and prefixes of 3): size-1 example axes would be specialised to constants.
    enc = to_onnx(EncoderGraph(model), (torch.zeros(2, 3, size, size),), ["image"], ["memory"], ({0: batch},))
    with torch.no_grad():
        memory = model.encode(torch.zeros(2, 3, size, size))
    ins, outs = step_io_names(cfg)
    if cfg.bidirectional:
        example: tuple[torch.Tensor, ...] = (torch.tensor([[1, 4, 5], [1, 5, 4]]), memory)
        dynamic: tuple[dict[int, Any], ...] = ({0: batch, 1: Dim("prefix", min=1, max=MAX_LENGTH + 1)}, {0: batch})
    else:
        states = tuple(torch.zeros(2, cfg.hidden) for _ in cfg.state_names)
        example = (torch.tensor([[4], [5]]), memory, *states)
        dynamic = ({0: batch}, {0: batch}, *({0: batch} for _ in states))
    step = to_onnx(step_module(model), example, ins, outs, dynamic)
    return serialize(enc), serialize(step)


def step_feeds(cfg: CaptionerConfig, memory: np.ndarray, stream: SeedStream, length: int) -> dict[str, np.ndarray]:
    """Seeded inputs of one decoder step for ``len(memory)`` rows: a prefix of
    ``length`` tokens (from ``<start>``; the last one only for a recurrent step) and random states."""
    rows = len(memory)
    tokens = stream.integers(4, max(cfg.vocab_size, 5), (rows, length if cfg.bidirectional else 1))
    if cfg.bidirectional:
        tokens[:, 0] = START_ID  # prefixes start with <start>
    feeds = {"tokens": tokens, "memory": memory}
    for s in cfg.state_names:
        feeds[s] = stream.normal((rows, cfg.hidden)).astype(np.float32)
    return feeds


def _parity_rows(cfg: CaptionerConfig, torch_side: dict[str, RunGraph], ort_side: dict[str, RunGraph], scenes: np.ndarray, tol: float) -> list[parity.ParityRow]:
    size = cfg.image_size
    rs = SeedStream(REFERENCE_SEED, 1)
    rows = parity.run_cases(
        {
            "encoder random b1": rs.normal((1, 3, size, size)).astype(np.float32),
            "encoder random b3": rs.normal((3, 3, size, size)).astype(np.float32),
            "encoder scenes b2": scenes,
        },
        lambda x: torch_side[ENCODER]({"image": x})["memory"],
        lambda x: ort_side[ENCODER]({"image": x})["memory"],
        tol,
    )
    memory = torch_side[ENCODER]({"image": rs.normal((3, 3, size, size)).astype(np.float32)})["memory"]
    for t in (1, 4, 9) if cfg.bidirectional else (1,):
        feeds = step_feeds(cfg, memory, rs, t)
        want, got = torch_side[DECODER_STEP](feeds), ort_side[DECODER_STEP](feeds)
        rows += [parity.compare(f"step {name} b3 t{t}", want[name], got[name], tol) for name in step_io_names(cfg)[1]]
    return rows


def _stored_reference(cfg: CaptionerConfig, torch_side: dict[str, RunGraph]) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Seeded inputs of both graphs and torch's outputs on them: what ``export verify`` re-runs."""
    rs = SeedStream(REFERENCE_SEED, 2)
    enc_in = {"image": rs.normal((2, 3, cfg.image_size, cfg.image_size)).astype(np.float32)}
    enc_out = torch_side[ENCODER](enc_in)
    step_in = step_feeds(cfg, enc_out["memory"], rs, 4)
    return {ENCODER: (enc_in, enc_out), DECODER_STEP: (step_in, torch_side[DECODER_STEP](step_in))}


def _end_to_end(spec: CaptioningSpec, torch_side: CaptionGraphs, ort_side: CaptionGraphs, images: np.ndarray, tol: float) -> list[dict[str, Any]]:
    """Greedy and beam captions via torch and via ORT must be the same token sequences."""
    report = []
    for i in range(len(images)):
        x = images[i : i + 1]
        entry: dict[str, Any] = {}
        for label, beam, n in (("greedy", 1, 1), (f"beam{CHECK_BEAM}", CHECK_BEAM, CHECK_N)):
            want = torch_side.caption(x, beam=beam, max_length=CHECK_MAX_LENGTH, n=n)[0]
            got = ort_side.caption(x, beam=beam, max_length=CHECK_MAX_LENGTH, n=n)[0]
            if [c.tokens for c in want] != [c.tokens for c in got]:
                raise ExportError(
                    f"scene {i}, {label}: ONNX Runtime captions {[spec.text(c) for c in got]} differ from torch's "
                    f"{[spec.text(c) for c in want]}; nothing was written"
                )
            worst = max(abs(a.log_prob - b.log_prob) for a, b in zip(want, got))
            if worst > tol * CHECK_MAX_LENGTH:
                raise ExportError(f"scene {i}, {label}: caption log-probabilities differ by {worst:.2e}; nothing was written")
            entry[label] = [{"caption": spec.text(c), "log_prob": c.log_prob} for c in got]
        report.append(entry)
    return report


def _graph_specs(cfg: CaptionerConfig, spec: CaptioningSpec) -> dict[str, GraphSpec]:
    size, hidden = spec.size, cfg.hidden
    memory_shape = [-1, (size // 8) ** 2 if cfg.attention else 1, hidden]  # P regions, fixed by the image size
    tok_shape = [-1, -1] if cfg.bidirectional else [-1, 1]
    step_inputs = [TensorSpec("tokens", "int64", tok_shape), TensorSpec("memory", "float32", memory_shape)]
    step_inputs += [TensorSpec(s, "float32", [-1, hidden]) for s in cfg.state_names]
    step_outputs = [TensorSpec("log_probs", "float32", [-1, len(spec.labels)])]
    step_outputs += [TensorSpec(f"{s}_out", "float32", [-1, hidden]) for s in cfg.state_names]
    return {
        ENCODER: GraphSpec(ENCODER_FILE, [TensorSpec("image", "float32", [-1, 3, size, size])], [TensorSpec("memory", "float32", memory_shape)]),
        DECODER_STEP: GraphSpec(DECODER_FILE, step_inputs, step_outputs),
    }


def export_captioner(
    checkpoint: str | Path | Checkpoint,
    repository: str | Path,
    name: str = "captioner",
    version: int = 1,
    overwrite: bool = False,
    tolerance: float = TOLERANCE,
    log: Callable[[str], None] = print,
    intra_op_threads: int = DEFAULT_MODEL_THREADS,
) -> ExportResult:
    """Export, verify (graph parity, then identical captions end to end), then
    write. ``details["captions"]``: per held-out scene, the checked captions."""
    check_target(repository, name, version, overwrite)  # fail before the slow part
    ckpt = as_checkpoint(checkpoint, TASK)
    model: Captioner = ckpt.model.eval()
    cfg = model.cfg
    spec = checkpoint_spec(ckpt)
    mode = "prefix (whole prefix re-read each step)" if cfg.bidirectional else f"recurrent (state {', '.join(cfg.state_names)})"
    log(f"exporting {ckpt.path} -> encoder + decoder step ONNX (opset 18, dynamic batch), decoder step {mode}")
    enc_bytes, step_bytes = _export_graphs(model, spec.size)
    sessions = {ENCODER: create_session(enc_bytes), DECODER_STEP: create_session(step_bytes)}  # the server's settings
    ort_side = spec.graphs(sessions)
    torch_side = torch_graphs(ckpt)

    data_seed = int(ckpt.config.get("data_seed", 0))
    scene_imgs = [make_caption_scene(data_seed, VAL_OFFSET + i, spec.size) for i in range(CHECK_SCENES)]
    scenes = np.concatenate([spec.prepare_image(img) for img, _ in scene_imgs])
    rows = _parity_rows(cfg, torch_side, {ENCODER: ort_side.encoder, DECODER_STEP: ort_side.decoder_step}, scenes[:2], tolerance)
    parity.require(rows, log)

    captions = _end_to_end(spec, CaptionGraphs(torch_side[ENCODER], torch_side[DECODER_STEP], spec.decoder), ort_side, scenes, tolerance)
    log(f"end to end: greedy and beam {CHECK_BEAM} captions identical via torch and ONNX Runtime on {len(scenes)} held-out scenes")
    for entry, (_, refs) in zip(captions, scene_imgs):
        log(f"  {entry['greedy'][0]['caption']!r}  (reference: {refs[0]!r})")

    task_reference = {
        "image": REFERENCE_IMAGE, "beam": CHECK_BEAM, "n": CHECK_N, "max_length": CHECK_MAX_LENGTH,
        "captions": captions[0][f"beam{CHECK_BEAM}"], "greedy": captions[0]["greedy"],
    }  # fmt: skip
    reference, ref_files = graph_reference(_stored_reference(cfg, torch_side), tolerance, REFERENCE_SEED, task_reference)
    manifest = Manifest(
        name=name,
        version=version,
        task=TASK,
        graphs=_graph_specs(cfg, spec),
        **spec.to_manifest(),
        seed=ckpt.seed,
        config={**ckpt.config, "model": cfg.to_dict()},
        metrics={**ckpt.metrics, "export_parity_max_abs": max(r.max_abs for r in rows)},
        tools=tool_versions(),
        reference=reference,
    )
    files = {
        ENCODER_FILE: enc_bytes,
        DECODER_FILE: step_bytes,
        VOCAB_FILE: spec.vocab.to_json().encode(),
        REFERENCE_IMAGE: encode_png(scene_imgs[0][0]),
        **ref_files,
    }
    folder = write_model_version(repository, manifest, files, overwrite=overwrite, intra_op_threads=intra_op_threads)
    log(f"wrote {folder} (digest {manifest.digest[:16]}…)")
    return ExportResult(folder, manifest, rows, {"captions": captions})
