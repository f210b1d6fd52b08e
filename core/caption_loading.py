"""An exported captioner's manifest -> a runnable :class:`CaptionGraphs`, shared by
the export check and the server (numpy only; sessions are duck-typed).

``seedlock.export.caption.ort_graphs`` opens the graphs with its CPU sessions,
the server with the sessions of its :class:`~seedlock.serve.runtime.ModelRuntime`;
both go through :func:`graphs_from_sessions`, so they drive the same graphs
with the same decoder settings. :func:`caption_spec` checks a manifest once, at
load, so a model the server cannot caption with is refused at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from seedlock.core.caption_decoding import CaptionGraphs, DecoderSpec, session_runner
from seedlock.core.manifest import Manifest, ManifestError
from seedlock.core.vocab import Vocabulary

ENCODER, DECODER_STEP = "encoder", "decoder_step"


@dataclass(frozen=True)
class CaptionSpec:
    """What captioning needs from a manifest: the decoder settings, the
    vocabulary and the image preprocessing."""

    decoder: DecoderSpec
    vocab: Vocabulary
    preprocess: dict[str, Any]


def caption_spec(manifest: Manifest) -> CaptionSpec:
    """Check a captioning manifest; raise :class:`ManifestError` saying what is wrong."""
    where = f"captioning model {manifest.name!r} v{manifest.version}"
    enc, step = manifest.graphs.get(ENCODER), manifest.graphs.get(DECODER_STEP)
    if enc is None or step is None:
        raise ManifestError(f"{where}: needs graphs {ENCODER!r} and {DECODER_STEP!r}, has {sorted(manifest.graphs)}")
    if [t.name for t in enc.inputs] != ["image"] or "memory" not in [t.name for t in enc.outputs]:
        raise ManifestError(f"{where}: the encoder must map 'image' to 'memory'")
    image = enc.inputs[0]
    if image.dtype != "float32" or len(image.shape) != 4 or image.shape[1] not in (3, -1):
        raise ManifestError(f"{where}: encoder input 'image' must be float32 (N, 3, S, S), is {image.dtype} {image.shape}")
    try:
        decoder = DecoderSpec.from_dict(manifest.postprocess)
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: bad decoder settings in postprocess ({exc!r})") from None
    if decoder.max_beam < 1 or decoder.max_length < 1:
        raise ManifestError(f"{where}: max_beam and max_length must be at least 1")
    step_in = {t.name for t in step.inputs}
    step_out = {t.name for t in step.outputs}
    want_in = {"tokens", "memory", *decoder.state_names}
    want_out = {"log_probs", *(f"{s}_out" for s in decoder.state_names)}
    if step_in != want_in or not want_out <= step_out:
        raise ManifestError(
            f"{where}: a {decoder.mode} decoder step needs inputs {sorted(want_in)} and outputs {sorted(want_out)}, "
            f"has {sorted(step_in)} -> {sorted(step_out)}"
        )
    try:
        vocab = Vocabulary(manifest.labels)
    except ValueError as exc:
        raise ManifestError(f"{where}: bad vocabulary in labels ({exc})") from None
    log_probs = next(t for t in step.outputs if t.name == "log_probs")
    if log_probs.shape[-1] not in (-1, len(vocab)):
        raise ManifestError(f"{where}: log_probs has {log_probs.shape[-1]} words but the vocabulary has {len(vocab)}")
    pre = manifest.preprocess
    try:
        size, mean, std = int(pre["size"]), [float(v) for v in pre["mean"]], [float(v) for v in pre["std"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: preprocess needs size, mean and std ({exc!r})") from None
    if size <= 0 or len(mean) != 3 or len(std) != 3 or 0.0 in std:
        raise ManifestError(f"{where}: bad preprocess size/mean/std {pre}")
    if pre.get("resize", "letterbox") != "letterbox":
        raise ManifestError(f"{where}: resize {pre.get('resize')!r} is not supported (letterbox only)")
    if image.shape[2:] not in ([-1, -1], [size, size]):
        raise ManifestError(f"{where}: encoder input is {image.shape} but preprocess size is {size}")
    return CaptionSpec(decoder, vocab, {**pre, "size": size, "mean": mean, "std": std})


def graphs_from_sessions(manifest: Manifest, sessions: Mapping[str, Any]) -> tuple[CaptionGraphs, CaptionSpec]:
    """Drive ``sessions[\"encoder\"]`` and ``sessions[\"decoder_step\"]``
    (``onnxruntime.InferenceSession`` or anything with its ``run`` /
    ``get_inputs`` / ``get_outputs``) as the manifest says."""
    spec = caption_spec(manifest)
    graphs = CaptionGraphs(session_runner(sessions[ENCODER]), session_runner(sessions[DECODER_STEP]), spec.decoder)
    return graphs, spec


def load_caption_graphs(folder: str | Path, open_session: Callable[[bytes], Any]) -> tuple[CaptionGraphs, Manifest, Vocabulary]:
    """Open an exported captioner version folder with ``open_session(model_bytes)``."""
    folder = Path(folder)
    manifest = Manifest.load(folder)
    sessions = {role: open_session((folder / manifest.graph(role).file).read_bytes()) for role in (ENCODER, DECODER_STEP)}
    graphs, spec = graphs_from_sessions(manifest, sessions)
    return graphs, manifest, spec.vocab
