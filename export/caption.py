"""Export an image-caption checkpoint into the model repository: two graphs.

    <repository>/<name>/<version>/encoder.onnx        image (B,3,S,S) -> memory (B,P,M)
    <repository>/<name>/<version>/decoder_step.onnx   one decoding step (see below)
    <repository>/<name>/<version>/vocab.json          the vocabulary (also the manifest's labels)
    <repository>/<name>/<version>/reference_image.png a held-out scene; its captions are in the manifest

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
ONNX Runtime as via torch on held-out scenes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as ort
import torch
from torch.export import Dim

from seedlock.core.caption_decoding import MAX_BEAM, MAX_LENGTH, CaptionGraphs, DecoderSpec, session_runner
from seedlock.core.caption_loading import load_caption_graphs
from seedlock.core.imaging import encode_png, normalize
from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.core.rng import SeedStream
from seedlock.core.vocab import Vocabulary
from seedlock.core.errors import UserError
from seedlock.export import parity
from seedlock.export.onnx_export import ExportError, serialize, to_onnx
from seedlock.export.repository import write_model_version
from seedlock.export.segmenter import cpu_session, tool_versions
from seedlock.train.captioner import Captioner, EncoderGraph, decoder_spec, step_io_names, step_module, torch_graphs
from seedlock.train.checkpoint import load_checkpoint
from seedlock.train.data.caption_scenes import VAL_OFFSET, make_caption_scene

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder_step.onnx"
VOCAB_FILE = "vocab.json"
REFERENCE_IMAGE = "reference_image.png"
TOLERANCE = 1e-4
REFERENCE_SEED = 20202  # random parity inputs: SeedStream(REFERENCE_SEED, k)
CHECK_BEAM, CHECK_N, CHECK_MAX_LENGTH = 3, 3, 20


@dataclass
class CaptionExportResult:
    folder: Path
    manifest: Manifest
    rows: list[parity.ParityRow]
    captions: list[dict[str, Any]]  # the end-to-end check: per scene, ORT captions (== torch)


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


def _parity_rows(model: Captioner, enc_sess: ort.InferenceSession, step_sess: ort.InferenceSession, scenes: np.ndarray, tol: float) -> list[parity.ParityRow]:
    cfg = model.cfg
    size = cfg.image_size
    rs = SeedStream(REFERENCE_SEED, 1)
    enc_t, step_t = EncoderGraph(model).eval(), step_module(model).eval()
    rows = parity.run_cases(
        {
            "encoder random b1": rs.normal((1, 3, size, size)).astype(np.float32),
            "encoder random b3": rs.normal((3, 3, size, size)).astype(np.float32),
            "encoder scenes b2": scenes,
        },
        lambda x: enc_t(torch.from_numpy(x)).detach().numpy(),
        lambda x: enc_sess.run(["memory"], {"image": x})[0],
        tol,
    )
    with torch.no_grad():
        memory = enc_t(torch.from_numpy(rs.normal((3, 3, size, size)).astype(np.float32))).numpy()
    ins, outs = step_io_names(cfg)
    lengths = (1, 4, 9) if cfg.bidirectional else (1,)
    for t in lengths:
        tokens = rs.integers(4, max(cfg.vocab_size, 5), (3, t))
        if cfg.bidirectional:
            tokens[:, 0] = 1  # prefixes start with <start>
        feeds = {"tokens": tokens, "memory": memory}
        for s in cfg.state_names:
            feeds[s] = rs.normal((3, cfg.hidden)).astype(np.float32)
        with torch.no_grad():
            ref = step_t(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in ins))
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = step_sess.run(outs, feeds)
        for name, r, g in zip(outs, ref, got):
            rows.append(parity.compare(f"step {name} b3 t{t}", r.numpy(), g, tol))
    return rows


def _end_to_end(torch_side: CaptionGraphs, ort_side: CaptionGraphs, images: np.ndarray, vocab: Vocabulary, tol: float) -> list[dict[str, Any]]:
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
                    f"scene {i}, {label}: ONNX Runtime captions {[vocab.decode(c.tokens) for c in got]} differ from torch's "
                    f"{[vocab.decode(c.tokens) for c in want]}; nothing was written"
                )
            worst = max(abs(a.log_prob - b.log_prob) for a, b in zip(want, got))
            if worst > tol * CHECK_MAX_LENGTH:
                raise ExportError(f"scene {i}, {label}: caption log-probabilities differ by {worst:.2e}; nothing was written")
            entry[label] = [{"caption": vocab.decode(c.tokens), "log_prob": c.log_prob} for c in got]
        report.append(entry)
    return report


def ort_graphs(folder: str | Path) -> tuple[CaptionGraphs, Manifest, Vocabulary]:
    """Load an exported captioner version folder with ONNX Runtime CPU sessions,
    through the loader the server uses (:mod:`seedlock.core.caption_loading`)."""
    return load_caption_graphs(folder, cpu_session)


def export_captioner(
    checkpoint: str | Path,
    repository: str | Path,
    name: str = "captioner",
    version: int = 1,
    overwrite: bool = False,
    tolerance: float = TOLERANCE,
    log: Callable[[str], None] = print,
) -> CaptionExportResult:
    """Export, verify (graph parity, then identical captions end to end), then write."""
    target = Path(repository) / name / str(version)
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists; pass --overwrite or choose another --version")
    ckpt = load_checkpoint(checkpoint)
    if ckpt.task != "captioning":
        raise ExportError(f"{checkpoint} is a {ckpt.task!r} checkpoint, not a captioning one")
    model: Captioner = ckpt.model.eval()
    cfg = model.cfg
    vocab = Vocabulary(ckpt.labels)
    pre = dict(ckpt.preprocess)
    size = int(pre["size"])
    mode = "prefix (whole prefix re-read each step)" if cfg.bidirectional else f"recurrent (state {', '.join(cfg.state_names)})"
    log(f"exporting {checkpoint} -> encoder + decoder step ONNX (opset 18, dynamic batch), decoder step {mode}")
    enc_bytes, step_bytes = _export_graphs(model, size)
    enc_sess, step_sess = cpu_session(enc_bytes), cpu_session(step_bytes)

    data_seed = int(ckpt.config.get("data_seed", 0))
    scene_imgs = [make_caption_scene(data_seed, VAL_OFFSET + i, size) for i in range(4)]
    scenes = normalize(np.stack([img for img, _ in scene_imgs]), pre["mean"], pre["std"])
    rows = _parity_rows(model, enc_sess, step_sess, scenes[:2], tolerance)
    log(parity.format_table(rows))
    failed = [r for r in rows if not r.ok]
    if failed:
        raise ExportError(f"ONNX Runtime differs from torch by {max(r.max_abs for r in failed):.3e} > {tolerance:.0e}; nothing was written")

    spec = decoder_spec(cfg)
    spec = DecoderSpec(spec.mode, spec.state_names, spec.hidden, max_beam=MAX_BEAM, max_length=MAX_LENGTH)
    ort_side = CaptionGraphs(session_runner(enc_sess), session_runner(step_sess), spec)
    captions = _end_to_end(torch_graphs(model), ort_side, scenes, vocab, tolerance)
    log(f"end to end: greedy and beam {CHECK_BEAM} captions identical via torch and ONNX Runtime on {len(scenes)} held-out scenes")
    for entry, (_, refs) in zip(captions, scene_imgs):
        log(f"  {entry['greedy'][0]['caption']!r}  (reference: {refs[0]!r})")

    memory_shape = [-1, (size // 8) ** 2 if cfg.attention else 1, cfg.hidden]  # P regions, fixed by the image size
    ins, outs = step_io_names(cfg)
    tok_shape = [-1, -1] if cfg.bidirectional else [-1, 1]
    step_inputs = [TensorSpec("tokens", "int64", tok_shape), TensorSpec("memory", "float32", memory_shape)]
    step_inputs += [TensorSpec(s, "float32", [-1, cfg.hidden]) for s in cfg.state_names]
    step_outputs = [TensorSpec("log_probs", "float32", [-1, len(vocab)])] + [TensorSpec(f"{s}_out", "float32", [-1, cfg.hidden]) for s in cfg.state_names]
    post = spec.to_dict()
    post.update(
        vocab=VOCAB_FILE,
        reference={
            "image": REFERENCE_IMAGE, "beam": CHECK_BEAM, "n": CHECK_N, "max_length": CHECK_MAX_LENGTH,
            "captions": captions[0][f"beam{CHECK_BEAM}"], "greedy": captions[0]["greedy"],
        },
    )  # fmt: skip
    metrics = dict(ckpt.metrics)
    metrics["export_parity_max_abs"] = max(r.max_abs for r in rows)
    pre.setdefault("resize", "letterbox")
    manifest = Manifest(
        name=name,
        version=version,
        task="captioning",
        graphs={
            "encoder": GraphSpec(ENCODER_FILE, [TensorSpec("image", "float32", [-1, 3, size, size])], [TensorSpec("memory", "float32", memory_shape)]),
            "decoder_step": GraphSpec(DECODER_FILE, step_inputs, step_outputs),
        },
        preprocess=pre,
        postprocess=post,
        labels=list(vocab.itos),
        seed=ckpt.seed,
        config={**ckpt.config, "model": cfg.to_dict()},
        metrics=metrics,
        tools=tool_versions(),
    )
    files = {
        ENCODER_FILE: enc_bytes,
        DECODER_FILE: step_bytes,
        VOCAB_FILE: vocab.to_json().encode(),
        REFERENCE_IMAGE: encode_png(scene_imgs[0][0]),
    }
    folder = write_model_version(repository, manifest, files, overwrite=overwrite)
    log(f"wrote {folder} (digest {manifest.digest[:16]}…)")
    return CaptionExportResult(folder, manifest, rows, captions)
