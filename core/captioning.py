"""The captioning task's contract: its manifest spec and its one image ->
captions chain, used by the export check, ``export verify``, the server and
the demo alike (numpy only; sessions are duck-typed).

    image (H, W, 3) uint8 --letterbox(size)--> normalize(mean, std) --> encoder graph
    memory --greedy / beam search over the decoder-step graph--> token ids --vocabulary--> words

:class:`CaptioningSpec` checks a manifest once, at load, so a model the
server cannot caption with is refused at start-up; :meth:`CaptioningSpec.graphs`
drives the graphs with the manifest's decoder settings whatever opened the
sessions (the server's runtime, the export check, ``export verify``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from seedlock.core.caption_decoding import Caption, CaptionGraphs, DecoderSpec, session_runner
from seedlock.core.imaging import letterbox, normalize, read_image
from seedlock.core.manifest import GraphSpec, Manifest, ManifestError
from seedlock.core.vocab import Vocabulary

ENCODER, DECODER_STEP = "encoder", "decoder_step"
VOCAB_FILE = "vocab.json"
# Token matrices of the reference check are padded with an id no vocabulary has,
# so a shorter caption can never look like a longer one.
NO_TOKEN = -1


@dataclass(frozen=True)
class CaptioningSpec:
    """What a captioning model version promises: how its decoder-step graph is
    driven, its vocabulary (the manifest's labels) and its image preprocessing."""

    TASK: ClassVar[str] = "captioning"

    decoder: DecoderSpec
    labels: tuple[str, ...]
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    vocab_file: str = VOCAB_FILE  # the vocabulary beside the graphs, for tools that read files

    def __post_init__(self) -> None:
        if self.size <= 0 or len(self.mean) != 3 or len(self.std) != 3 or 0.0 in self.std:
            raise ValueError(f"bad preprocess: size {self.size}, mean {list(self.mean)}, std {list(self.std)}")
        if self.decoder.max_beam < 1 or self.decoder.max_length < 1:
            raise ValueError("max_beam and max_length must be at least 1")
        self.vocab  # noqa: B018 - a bad vocabulary fails here, not on the first request

    @cached_property
    def vocab(self) -> Vocabulary:
        return Vocabulary(self.labels)

    # -- the manifest -------------------------------------------------------
    def to_manifest(self) -> dict[str, Any]:
        return {
            "preprocess": {"size": self.size, "mean": list(self.mean), "std": list(self.std), "resize": "letterbox"},
            "postprocess": {**self.decoder.to_dict(), "vocab": self.vocab_file},
            "labels": list(self.labels),
        }

    @classmethod
    def from_manifest(cls, m: Manifest) -> "CaptioningSpec":
        """Check a captioning manifest; raise :class:`ManifestError` saying what is wrong."""
        where = f"captioning model {m.name!r} v{m.version}"
        enc, step = m.graphs.get(ENCODER), m.graphs.get(DECODER_STEP)
        if enc is None or step is None:
            raise ManifestError(f"{where}: needs graphs {ENCODER!r} and {DECODER_STEP!r}, has {sorted(m.graphs)}")
        _check_encoder(where, enc)
        try:
            decoder = DecoderSpec.from_dict(m.postprocess)
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: bad decoder settings in postprocess ({exc!r})") from None
        _check_step(where, step, decoder)
        pre = m.preprocess
        if pre.get("resize", "letterbox") != "letterbox":
            raise ManifestError(f"{where}: resize {pre.get('resize')!r} is not supported (letterbox only)")
        try:
            size, mean, std = int(pre["size"]), tuple(float(v) for v in pre["mean"]), tuple(float(v) for v in pre["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: preprocess needs size, mean and std ({exc!r})") from None
        try:
            Vocabulary(m.labels)
        except ValueError as exc:
            raise ManifestError(f"{where}: bad vocabulary in labels ({exc})") from None
        try:
            spec = cls(decoder, tuple(str(w) for w in m.labels), size, mean, std,  # type: ignore[arg-type]
                       str(m.postprocess.get("vocab", VOCAB_FILE)))  # fmt: skip
        except ValueError as exc:
            raise ManifestError(f"{where}: {exc}") from None
        image = enc.inputs[0]
        if image.shape[2:] not in ([-1, -1], [size, size]):
            raise ManifestError(f"{where}: encoder input is {image.shape} but preprocess size is {size}")
        log_probs = next(t for t in step.outputs if t.name == "log_probs")
        if log_probs.shape[-1] not in (-1, len(spec.labels)):
            raise ManifestError(f"{where}: log_probs has {log_probs.shape[-1]} words but the vocabulary has {len(spec.labels)}")
        return spec

    # -- image -> captions ----------------------------------------------------
    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)`` -> float32 ``(1, 3, S, S)``: letterbox to ``size``, then normalize."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
        boxed, _ = letterbox(image, self.size)
        return normalize(boxed, list(self.mean), list(self.std))

    def graphs(self, sessions: Mapping[str, Any]) -> CaptionGraphs:
        """Drive ``sessions["encoder"]`` and ``sessions["decoder_step"]``
        (``onnxruntime.InferenceSession`` or anything with its ``run`` /
        ``get_inputs`` / ``get_outputs``) with this spec's decoder settings."""
        return CaptionGraphs(session_runner(sessions[ENCODER]), session_runner(sessions[DECODER_STEP]), self.decoder)

    def caption(self, graphs: CaptionGraphs, image: np.ndarray, beam: int, max_length: int, n: int = 1) -> list[Caption]:
        """``n`` captions of one RGB uint8 image, best first (one image per call: see :class:`CaptionGraphs`)."""
        return graphs.caption(self.prepare_image(image), beam=beam, max_length=max_length, n=n)[0]

    def text(self, caption: Caption) -> str:
        return self.vocab.decode(caption.tokens)

    def tokens_of(self, text: str) -> list[int]:
        """The token ids of a caption's text: the inverse of :meth:`text` (words are
        vocabulary entries joined by spaces); a word the vocabulary lacks is ``-1``."""
        return [self.vocab.stoi.get(w, NO_TOKEN) for w in text.split()]

    # -- export verify ----------------------------------------------------------
    def check_reference(
        self, sessions: Mapping[str, Any], folder: str | Path, reference: Mapping[str, Any]
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Caption the stored reference image again with ``sessions``: the
        greedy and beam token ids must be the ones recorded at export.
        Returns ``(case, expected, actual)`` token matrices, one row per caption."""
        try:
            image_file, beam, n = str(reference["image"]), int(reference["beam"]), int(reference["n"])
            max_length = int(reference["max_length"])
            stored = {"greedy": (1, 1, reference["greedy"]), f"beam{beam}": (beam, n, reference["captions"])}
            expected = {label: [self.tokens_of(str(c["caption"])) for c in caps] for label, (_, _, caps) in stored.items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(
                f"{folder}: the stored captioning reference needs image, beam, n, max_length, greedy and captions ({exc!r}); "
                "re-export the model"
            ) from None
        graphs = self.graphs(sessions)
        image = read_image(Path(folder) / image_file)
        cases = []
        for label, (b, k, _) in stored.items():
            actual = [list(c.tokens) for c in self.caption(graphs, image, beam=b, max_length=max_length, n=k)]
            want, got = token_matrices(expected[label], actual)
            cases.append((f"{self.TASK}/{label} caption tokens", want, got))
        return cases


def token_matrices(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Two lists of token lists as int64 matrices of one width (padded with
    :data:`NO_TOKEN`), so captions of different lengths compare element-wise."""
    width = max([len(t) for t in (*a, *b)], default=0)

    def matrix(rows: Sequence[Sequence[int]]) -> np.ndarray:
        out = np.full((len(rows), width), NO_TOKEN, dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    return matrix(a), matrix(b)


def _check_encoder(where: str, enc: GraphSpec) -> None:
    if [t.name for t in enc.inputs] != ["image"] or "memory" not in [t.name for t in enc.outputs]:
        raise ManifestError(f"{where}: the encoder must map 'image' to 'memory'")
    image = enc.inputs[0]
    if image.dtype != "float32" or len(image.shape) != 4 or image.shape[1] not in (3, -1):
        raise ManifestError(f"{where}: encoder input 'image' must be float32 (N, 3, S, S), is {image.dtype} {image.shape}")


def _check_step(where: str, step: GraphSpec, decoder: DecoderSpec) -> None:
    step_in = {t.name for t in step.inputs}
    step_out = {t.name for t in step.outputs}
    want_in = {"tokens", "memory", *decoder.state_names}
    want_out = {"log_probs", *(f"{s}_out" for s in decoder.state_names)}
    if step_in != want_in or not want_out <= step_out:
        raise ManifestError(
            f"{where}: a {decoder.mode} decoder step needs inputs {sorted(want_in)} and outputs {sorted(want_out)}, "
            f"has {sorted(step_in)} -> {sorted(step_out)}"
        )
