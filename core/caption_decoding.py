"""Greedy and beam-search caption decoding, written once in numpy.

Training's evaluation (torch), the export check (torch vs ONNX Runtime) and the
server (ONNX Runtime) all decode through this module, so the same image and
parameters give the same captions everywhere. The model is reached through a

    step(prefix_tokens, state) -> (log_probs, new_state)

callable: ``prefix_tokens`` is int64 ``(B, t)`` (every row starts with
``<start>``; all rows have the same length, because finished hypotheses leave
the batch), ``state`` is whatever the model carries between steps with the
batch on axis 0 of every array (a dict of arrays here: the image memory and,
for a recurrent decoder, its hidden state), ``log_probs`` is ``(B, V)``.

Tie-breaking is total and deterministic: candidates are ranked by score
(float64 sums of the step's log-probabilities), then lower token id, then lower
beam index. Greedy's ``argmax`` picks the lowest id on ties, so beam size 1
gives exactly the greedy caption.

:class:`CaptionGraphs` drives an exported captioner (encoder graph +
decoder-step graph, named in the manifest) through any runtime that maps a dict
of named inputs to a dict of named outputs: ONNX Runtime sessions in the
server, the torch modules in the export check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from seedlock.core.vocab import END_ID, PAD_ID, START_ID

MAX_BEAM = 16
MAX_LENGTH = 50
MAX_CAPTIONS = MAX_BEAM

StepFn = Callable[[np.ndarray, Any], "tuple[np.ndarray, Any]"]
RunGraph = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Caption:
    """One decoded caption: generated ids (no ``<start>``/``<end>``) and their
    total log-probability (including ``<end>`` when ``finished``; a caption cut
    at ``max_length`` has ``finished=False``)."""

    tokens: tuple[int, ...]
    log_prob: float
    finished: bool = True


def check_params(beam: int, max_length: int, n: int = 1, max_beam: int = MAX_BEAM, max_len_limit: int = MAX_LENGTH) -> None:
    """Raise ``ValueError`` with a message a caller can act on (the server maps it to INVALID_ARGUMENT)."""

    def is_int(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not is_int(beam) or not 1 <= beam <= max_beam:
        raise ValueError(f"beam size must be an integer from 1 to {max_beam}, got {beam!r}")
    if not is_int(max_length) or not 1 <= max_length <= max_len_limit:
        raise ValueError(f"max length must be an integer from 1 to {max_len_limit}, got {max_length!r}")
    if not is_int(n) or not 1 <= n <= beam:
        raise ValueError(f"number of captions must be from 1 to the beam size ({beam}), got {n!r}")


def take_state(state: Any, rows: np.ndarray) -> Any:
    """Select (and repeat) batch rows of a state: arrays, dicts, tuples/lists of them, or None."""
    if state is None:
        return None
    if isinstance(state, np.ndarray):
        return state[rows]
    if isinstance(state, dict):
        return {k: take_state(v, rows) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(take_state(v, rows) for v in state)
    raise TypeError(f"cannot select rows of a {type(state).__name__} state")


def _scores(log_probs: np.ndarray, rows: int, banned: Sequence[int]) -> np.ndarray:
    logp = np.asarray(log_probs, dtype=np.float64)
    if logp.ndim != 2 or logp.shape[0] != rows:
        raise ValueError(f"step returned log_probs of shape {logp.shape}, expected ({rows}, vocab)")
    if len(banned):
        logp = logp.copy()
        logp[:, list(banned)] = -np.inf
    return logp


def greedy_decode(
    step: StepFn,
    state: Any,
    batch: int,
    max_length: int,
    start_id: int = START_ID,
    end_id: int = END_ID,
    banned: Sequence[int] = (PAD_ID, START_ID),
) -> list[Caption]:
    """The most likely next token at every step, for ``batch`` images at once
    (``state`` has ``batch`` rows). Returns one :class:`Caption` per image."""
    alive = np.arange(batch)
    prefix = np.full((batch, 1), start_id, dtype=np.int64)
    scores = np.zeros(batch, dtype=np.float64)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    done: dict[int, Caption] = {}
    for _ in range(max_length):
        logp, state = step(prefix, state)
        logp = _scores(logp, len(alive), banned)
        best = np.argmax(logp, axis=1)  # first maximum: lowest token id on ties
        scores[alive] += logp[np.arange(len(alive)), best]
        keep = []
        for row, (img, tok) in enumerate(zip(alive, best)):
            if tok == end_id:
                done[int(img)] = Caption(tuple(tokens[img]), float(scores[img]), True)
            else:
                tokens[img].append(int(tok))
                keep.append(row)
        if not keep:
            break
        keep_rows = np.asarray(keep, dtype=np.int64)
        alive = alive[keep_rows]
        prefix = np.concatenate([prefix[keep_rows], best[keep_rows, None].astype(np.int64)], axis=1)
        state = take_state(state, keep_rows)
    for img in alive:
        done.setdefault(int(img), Caption(tuple(tokens[img]), float(scores[img]), False))
    return [done[i] for i in range(batch)]


def beam_search(
    step: StepFn,
    state: Any,
    beam: int,
    max_length: int,
    n: int = 1,
    start_id: int = START_ID,
    end_id: int = END_ID,
    banned: Sequence[int] = (PAD_ID, START_ID),
) -> list[Caption]:
    """The ``n`` best captions of one image (``state`` has one row) by beam search.

    Every step scores all ``beam x V`` continuations in one batched ``step``
    call and walks them best first (score, then token id, then beam index):
    ``<end>`` continuations become finished captions, the others fill the next
    beam until it holds ``beam`` hypotheses. Search stops when ``n`` finished
    captions score at least as well as the best live one (log-probabilities
    only fall, so nothing live can overtake them) or after ``max_length``
    steps. Finished captions rank before unfinished ones; within each, higher
    total log-probability first, then the order they were found.
    """
    check_params(beam, max_length, n, max_beam=max(beam, MAX_BEAM), max_len_limit=max(max_length, MAX_LENGTH))
    prefix = np.full((1, 1), start_id, dtype=np.int64)
    scores = np.zeros(1, dtype=np.float64)
    finished: list[Caption] = []
    for _ in range(max_length):
        logp, new_state = step(prefix, state)
        cand = scores[:, None] + _scores(logp, len(scores), banned)
        k, v = cand.shape
        flat = cand.ravel()
        beam_idx = np.repeat(np.arange(k), v)
        tok_idx = np.tile(np.arange(v), k)
        order = np.lexsort((beam_idx, tok_idx, -flat))  # last key is the primary one
        rows: list[int] = []
        toks: list[int] = []
        for j in order:
            s = flat[j]
            if not np.isfinite(s):
                break  # -inf (banned) and worse come last
            b, w = int(beam_idx[j]), int(tok_idx[j])
            if w == end_id:
                finished.append(Caption(tuple(int(t) for t in prefix[b, 1:]), float(s), True))
            else:
                rows.append(b)
                toks.append(w)
                if len(rows) == beam:
                    break
        if not rows:
            prefix = prefix[:0]
            break
        sel = np.asarray(rows, dtype=np.int64)
        new_scores = flat[sel * v + np.asarray(toks)]
        prefix = np.concatenate([prefix[sel], np.asarray(toks, dtype=np.int64)[:, None]], axis=1)
        scores = new_scores
        state = take_state(new_state, sel)
        if len(finished) >= n:
            nth = sorted(c.log_prob for c in finished)[-n]
            if nth >= scores.max():
                prefix = prefix[:0]
                break
    unfinished = [Caption(tuple(int(t) for t in p[1:]), float(s), False) for p, s in zip(prefix, scores)]
    ranked = sorted(
        enumerate(finished + unfinished), key=lambda ic: (not ic[1].finished, -ic[1].log_prob, ic[0])
    )
    return [c for _, c in ranked[:n]]


def decode(step: StepFn, state: Any, beam: int, max_length: int, n: int = 1, **kwargs: Any) -> list[Caption]:
    """``n`` captions of one image: greedy when ``beam == 1``, else beam search."""
    check_params(beam, max_length, n, max_beam=max(beam, MAX_BEAM), max_len_limit=max(max_length, MAX_LENGTH))
    if beam == 1:
        return greedy_decode(step, state, 1, max_length, **kwargs)
    return beam_search(step, state, beam, max_length, n, **kwargs)


# --------------------------------------------------------------------------- exported graphs


def session_runner(session: Any) -> RunGraph:
    """Wrap an ``onnxruntime.InferenceSession`` (duck-typed: no import here) as a :data:`RunGraph`."""
    outputs = [o.name for o in session.get_outputs()]
    inputs = {i.name for i in session.get_inputs()}

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(outputs, session.run(outputs, {k: v for k, v in feeds.items() if k in inputs})))

    return run


@dataclass(frozen=True)
class DecoderSpec:
    """How the decoder-step graph is driven (the manifest's ``postprocess``).

    ``mode`` "recurrent": the step reads the last token (``tokens`` is
    ``(B, 1)``) and the recurrent state inputs ``state_names`` (each ``(B,
    hidden)``) and returns them as ``<name>_out``: exact and O(1) per step, for
    a uni-directional RNN. ``mode`` "prefix": the step reads the whole prefix
    ``(B, t)`` and re-runs the RNN over it, because a bi-directional RNN's
    backward half changes whenever the prefix grows; no state is carried.
    """

    mode: str
    state_names: tuple[str, ...] = ()
    hidden: int = 0
    start_id: int = START_ID
    end_id: int = END_ID
    banned: tuple[int, ...] = (PAD_ID, START_ID)
    max_beam: int = MAX_BEAM
    max_length: int = MAX_LENGTH

    def __post_init__(self) -> None:
        if self.mode not in ("recurrent", "prefix"):
            raise ValueError(f"decoder mode must be 'recurrent' or 'prefix', got {self.mode!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "decoder_mode": self.mode, "state_names": list(self.state_names), "hidden": self.hidden,
            "start_id": self.start_id, "end_id": self.end_id, "banned": list(self.banned),
            "max_beam": self.max_beam, "max_length": self.max_length,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DecoderSpec":
        return cls(
            mode=d["decoder_mode"], state_names=tuple(d.get("state_names", ())), hidden=int(d.get("hidden", 0)),
            start_id=int(d.get("start_id", START_ID)), end_id=int(d.get("end_id", END_ID)),
            banned=tuple(int(b) for b in d.get("banned", (PAD_ID, START_ID))),
            max_beam=int(d.get("max_beam", MAX_BEAM)), max_length=int(d.get("max_length", MAX_LENGTH)),
        )  # fmt: skip


@dataclass
class CaptionGraphs:
    """An exported captioner: ``encoder`` maps ``{"image": (B,3,S,S)}`` to
    ``{"memory": (B,P,M)}``; ``decoder_step`` maps ``tokens``, ``memory`` (and
    the recurrent state) to ``log_probs`` (and ``<state>_out``).

    Runtimes may round differently for different batch sizes (last bits of the
    log-probabilities), so a caller that promises byte-identical answers
    decodes each request on its own: one image, its beams as the batch.
    """

    encoder: RunGraph
    decoder_step: RunGraph
    spec: DecoderSpec
    kwargs: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.kwargs = {"start_id": self.spec.start_id, "end_id": self.spec.end_id, "banned": self.spec.banned}

    def encode(self, images: np.ndarray) -> np.ndarray:
        return self.encoder({"image": np.ascontiguousarray(images, dtype=np.float32)})["memory"]

    def initial_state(self, memory: np.ndarray) -> dict[str, np.ndarray]:
        state = {"memory": memory}
        for name in self.spec.state_names:
            state[name] = np.zeros((memory.shape[0], self.spec.hidden), dtype=np.float32)
        return state

    def step(self, prefix: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        recurrent = self.spec.mode == "recurrent"
        feeds = {"tokens": np.ascontiguousarray(prefix[:, -1:] if recurrent else prefix, dtype=np.int64), **state}
        out = self.decoder_step(feeds)
        new_state = {"memory": state["memory"]}
        for name in self.spec.state_names:
            new_state[name] = out[f"{name}_out"]
        return out["log_probs"], new_state

    def caption(self, images: np.ndarray, beam: int = 1, max_length: int = 20, n: int = 1) -> list[list[Caption]]:
        """``n`` captions for each preprocessed image in ``images`` ``(B, 3, S, S)``.

        Greedy (beam 1) runs all images in one batch; beam search runs image by
        image, batched across its beams.
        """
        check_params(beam, max_length, n, self.spec.max_beam, self.spec.max_length)
        memory = self.encode(images)
        if beam == 1:
            return [[c] for c in greedy_decode(self.step, self.initial_state(memory), len(memory), max_length, **self.kwargs)]
        return [
            beam_search(self.step, self.initial_state(memory[i : i + 1]), beam, max_length, n, **self.kwargs)
            for i in range(len(memory))
        ]
