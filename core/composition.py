"""The composition task's contract: its manifest spec and its one generation
path, shared by the export check, ``export verify``, the server, the bench and
the demo, so "same seed, same melody" depends only on the graphs and the
shared sampler of :mod:`seedlock.core.music_sampling`.

    primer (N, 2) tokens --prepare_primer(window)--> encoder graph -> h, c, memory
    then per event: decoder_step graph -> pitch/duration logits --sampler(seed)--> next event
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from seedlock.core import music_events as me
from seedlock.core import music_sampling as ms
from seedlock.core.manifest import Manifest, ManifestError

ENCODER, STEP = "encoder", "decoder_step"
ENCODER_INPUTS = ("events", "genre")
ENCODER_OUTPUTS = ("h", "c", "memory")
STEP_INPUTS = ("event", "genre", "h", "c", "memory")
STEP_OUTPUTS = ("pitch_logits", "duration_logits", "h_out", "c_out")
HORIZON = 48  # the trainer's default
DEFAULT_SAMPLING = ms.SamplingParams("top_k", temperature=1.0, top_k=8)

Events = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CompositionSpec:
    """What a composition model version promises: its genres and their stored
    primers, the encoder window, the event vocabulary its tokens are in, and
    the sampling limits and default the server applies."""

    TASK: ClassVar[str] = "composition"

    genres: tuple[str, ...]
    window: int
    primers: Mapping[str, Events] = field(hash=False)  # genre -> `window` events (the server's default primer)
    genre_input: bool = True  # the graphs take the genre (a genre-conditioned model)
    conditioned: bool = True  # what training recorded (the same fact, kept for the round trip)
    horizon: int = HORIZON  # target events per training window (informational)
    vocab: str = me.VOCAB_VERSION
    pitch_low: int = me.PITCH_LOW
    pitch_high: int = me.PITCH_HIGH
    durations: tuple[float, ...] = me.DURATIONS
    num_pitches: int = me.NUM_PITCHES
    num_durations: int = me.NUM_DURATIONS
    max_length: int = ms.MAX_LENGTH  # as recorded; requests are held to `length_limit`
    max_temperature: float = ms.MAX_TEMPERATURE
    strategies: tuple[str, ...] = ms.STRATEGIES
    default_sampling: ms.SamplingParams = DEFAULT_SAMPLING

    def __post_init__(self) -> None:
        if self.window < 1 or self.max_length < 1 or not self.genres:
            raise ValueError("needs window >= 1, max_length >= 1 and at least one genre")
        if len(set(self.genres)) != len(self.genres):
            raise ValueError(f"genres must be distinct, got {list(self.genres)}")
        # The server's codecs turn tokens into notes with this seedlock's table:
        # a model trained on another one would answer with the wrong notes.
        mine = (me.VOCAB_VERSION, me.PITCH_LOW, me.PITCH_HIGH, me.DURATIONS, me.NUM_PITCHES, me.NUM_DURATIONS)
        theirs = (self.vocab, self.pitch_low, self.pitch_high, self.durations, self.num_pitches, self.num_durations)
        if theirs != mine:
            raise ValueError(
                f"its tokens use vocabulary {self.vocab!r} (pitches {self.pitch_low}..{self.pitch_high}, "
                f"{len(self.durations)} durations) but this seedlock decodes {me.VOCAB_VERSION!r} "
                f"({me.PITCH_LOW}..{me.PITCH_HIGH}, {me.NUM_DURATIONS} durations); retrain and re-export it"
            )
        for genre in self.genres:
            if genre not in self.primers:
                raise ValueError(f"genre {genre!r} has no stored primer")
            if not self.primers[genre]:
                raise ValueError(f"genre {genre!r} has an empty stored primer")
            try:
                me.validate(self.primer_for(genre))
            except ValueError as exc:
                raise ValueError(f"genre {genre!r} has an unusable stored primer: {exc}") from None
        try:
            self.default_sampling.validate()
        except ms.SamplingError as exc:
            raise ValueError(f"default_sampling: {exc}") from None

    @property
    def length_limit(self) -> int:
        """Most events one request may ask for: the model's limit, within the sampler's."""
        return min(self.max_length, ms.MAX_LENGTH)

    def primer_for(self, genre: str) -> np.ndarray:
        """The genre's stored primer, ``(window, 2)`` int64."""
        return np.asarray(self.primers[genre], dtype=np.int64).reshape(-1, 2)

    # -- the manifest -------------------------------------------------------
    def to_manifest(self) -> dict[str, Any]:
        d = self.default_sampling
        return {
            "preprocess": {
                "window": self.window, "horizon": self.horizon, "vocab": self.vocab,
                "pitch_low": self.pitch_low, "pitch_high": self.pitch_high, "durations": list(self.durations),
                "num_pitches": self.num_pitches, "num_durations": self.num_durations,
                "conditioned": self.conditioned, "genre_input": self.genre_input,
                "primers": {g: [list(e) for e in events] for g, events in self.primers.items()},
            },
            "postprocess": {
                "max_length": self.max_length, "max_temperature": self.max_temperature,
                "strategies": list(self.strategies),
                "default_sampling": {"strategy": d.strategy, "temperature": d.temperature, "top_k": d.top_k},
            },
            "labels": list(self.genres),
        }  # fmt: skip

    @classmethod
    def from_manifest(cls, m: Manifest) -> "CompositionSpec":
        where = f"composition model {m.name!r} v{m.version}"
        _check_graphs(m, where)
        pre, post = m.preprocess, m.postprocess
        try:
            d = dict(post.get("default_sampling") or {})
            default = ms.SamplingParams(str(d.get("strategy", DEFAULT_SAMPLING.strategy)),
                                        float(d.get("temperature", DEFAULT_SAMPLING.temperature)),
                                        int(d.get("top_k", DEFAULT_SAMPLING.top_k)))  # fmt: skip
            conditioned = bool(pre.get("conditioned", True))
            spec = cls(
                genres=tuple(str(g) for g in m.labels),
                window=int(pre["window"]),
                primers={str(g): _events(v) for g, v in dict(pre["primers"]).items()},
                genre_input=bool(pre.get("genre_input", conditioned)),
                conditioned=conditioned,
                horizon=int(pre.get("horizon", HORIZON)),
                vocab=str(pre.get("vocab", me.VOCAB_VERSION)),
                pitch_low=int(pre.get("pitch_low", me.PITCH_LOW)),
                pitch_high=int(pre.get("pitch_high", me.PITCH_HIGH)),
                durations=tuple(float(v) for v in pre.get("durations", me.DURATIONS)),
                num_pitches=int(pre.get("num_pitches", me.NUM_PITCHES)),
                num_durations=int(pre.get("num_durations", me.NUM_DURATIONS)),
                max_length=int(post.get("max_length", ms.MAX_LENGTH)),
                max_temperature=float(post.get("max_temperature", ms.MAX_TEMPERATURE)),
                strategies=tuple(str(s) for s in post.get("strategies", ms.STRATEGIES)),
                default_sampling=default,
            )
        except KeyError as exc:
            raise ManifestError(f"{where}: preprocess needs {exc.args[0]!r} (re-export the model)") from None
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: {exc}") from None
        window_axis = next(t.shape[1] for t in m.graphs[ENCODER].inputs if t.name == "events")
        if window_axis not in (-1, spec.window):
            raise ManifestError(f"{where}: the encoder reads {window_axis} events but preprocess.window is {spec.window}")
        step_outputs = {t.name: t.shape for t in m.graphs[STEP].outputs}
        for name, size in (("pitch_logits", spec.num_pitches), ("duration_logits", spec.num_durations)):
            if step_outputs[name][-1:] not in ([-1], [size]):
                raise ManifestError(f"{where}: {name} has shape {step_outputs[name]}, expected (N, {size})")
        return spec

    # -- export verify --------------------------------------------------------
    def check_reference(self, sessions: Mapping[str, Any], folder: Path, reference: dict[str, Any]) -> list:
        """Regenerate the melody stored at export time on ``sessions`` (the
        server's generation path): one exact case."""
        try:
            params = ms.SamplingParams(**reference["sampling"])
            genre, length, seed = str(reference["genre"]), int(reference["length"]), int(reference["seed"])
            expected = np.asarray(reference["events"], dtype=np.int64).reshape(-1, 2)
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"reference.task needs genre, seed, length, sampling and events ({exc!r})") from None
        actual = GraphComposer(sessions[ENCODER], sessions[STEP], self).compose(genre, length, params, seed)
        return [("composition/events reference", expected, actual)]


def _events(value: Any) -> Events:
    """A stored primer as a tuple of (pitch, duration) token pairs."""
    arr = np.asarray(value, dtype=np.int64).reshape(-1, 2)
    return tuple((int(p), int(d)) for p, d in arr)


def _check_graphs(m: Manifest, where: str) -> None:
    """The tensor names :class:`GraphComposer` feeds and reads must be the graphs' own."""
    for role in (ENCODER, STEP):
        if role not in m.graphs:
            raise ManifestError(f"{where}: needs graphs {ENCODER!r} and {STEP!r}, has {sorted(m.graphs)}")
    for role, inputs, outputs in ((ENCODER, ENCODER_INPUTS, ENCODER_OUTPUTS), (STEP, STEP_INPUTS, STEP_OUTPUTS)):
        graph = m.graphs[role]
        # the exporter drops inputs a graph does not use, so only the names are checked
        unknown = [t.name for t in graph.inputs if t.name not in inputs]
        missing = [name for name in outputs if name not in {t.name for t in graph.outputs}]
        if unknown or missing:
            raise ManifestError(f"{where}: graph {role!r} takes inputs from {list(inputs)} and gives {list(outputs)}; "
                                f"it has unknown inputs {unknown} and lacks outputs {missing}")
    if "events" not in {t.name for t in m.graphs[ENCODER].inputs}:
        raise ManifestError(f"{where}: the encoder graph has no 'events' input")


class GraphComposer:
    """Generation on the two exported graphs of a composer (no torch, no onnxruntime import).

    ``encoder`` and ``step`` are anything with ONNX Runtime's session interface
    (``run(output_names, feeds)`` and ``get_inputs()``): the server passes its
    sessions, the export check and ``export verify`` theirs.
    """

    def __init__(self, encoder: Any, step: Any, spec: CompositionSpec) -> None:
        self.encoder, self.step_session, self.spec = encoder, step, spec
        self.genres = list(spec.genres)
        self.window = spec.window
        # The exporter may drop inputs a graph does not use (an unconditioned
        # model's genre), so feeds are filtered by each session's own inputs.
        self._enc_inputs = {i.name for i in encoder.get_inputs()}
        self._step_inputs = {i.name for i in step.get_inputs()}

    def genre_id(self, genre: str) -> int:
        if genre not in self.genres:
            raise ValueError(f"unknown genre {genre!r}; this model knows: {', '.join(self.genres)}")
        return self.genres.index(genre)

    def initial_state(self, primer: np.ndarray, genre: int) -> dict[str, np.ndarray]:
        feeds = {"events": ms.prepare_primer(primer, self.window)[None], "genre": np.array([genre], dtype=np.int64)}
        h, c, memory = self.encoder.run(list(ENCODER_OUTPUTS), {k: v for k, v in feeds.items() if k in self._enc_inputs})
        return {"h": h, "c": c, "memory": memory, "genre": feeds["genre"]}

    def step(self, event: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        feeds = {**state, "event": np.asarray(event, dtype=np.int64).reshape(1, 2)}
        p, d, h, c = self.step_session.run(list(STEP_OUTPUTS), {k: v for k, v in feeds.items() if k in self._step_inputs})
        return p[0], d[0], {**state, "h": h, "c": c}

    def primer_for(self, genre: str) -> np.ndarray:
        self.genre_id(genre)
        return self.spec.primer_for(genre)

    def compose(
        self, genre: str, length: int, params: ms.SamplingParams, seed: int,
        primer: np.ndarray | None = None, on_event: Callable[[int, np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """``length`` events after ``primer`` (the genre's stored primer when None)."""
        gid = self.genre_id(genre)
        primer = self.primer_for(genre) if primer is None else me.validate(primer)
        state = self.initial_state(primer, gid)
        return ms.generate(self.step, primer[-1], state, length, params, seed, on_event=on_event)
