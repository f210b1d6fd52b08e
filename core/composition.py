"""Melody generation on an exported composer's graphs, shared by the export
check, the server, the bench and the demo: one code path, so "same seed, same
melody" depends only on the graphs and the shared sampler of
:mod:`seedlock.core.music_sampling`."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from seedlock.core import music_events as me
from seedlock.core import music_sampling as ms
from seedlock.core.manifest import Manifest


class GraphComposer:
    """Generation on the two exported graphs of a composer (no torch, no onnxruntime import).

    ``encoder`` and ``step`` are anything with ONNX Runtime's session interface
    (``run(output_names, feeds)`` and ``get_inputs()``): the server passes its
    sessions, the export check its own.
    """

    def __init__(self, encoder: Any, step: Any, manifest: Manifest) -> None:
        self.encoder, self.step_session, self.manifest = encoder, step, manifest
        self.genres = list(manifest.labels)
        self.window = int(manifest.preprocess["window"])
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
        h, c, memory = self.encoder.run(["h", "c", "memory"], {k: v for k, v in feeds.items() if k in self._enc_inputs})
        return {"h": h, "c": c, "memory": memory, "genre": feeds["genre"]}

    def step(self, event: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        feeds = {**state, "event": np.asarray(event, dtype=np.int64).reshape(1, 2)}
        p, d, h, c = self.step_session.run(
            ["pitch_logits", "duration_logits", "h_out", "c_out"], {k: v for k, v in feeds.items() if k in self._step_inputs}
        )
        return p[0], d[0], {**state, "h": h, "c": c}

    def primer_for(self, genre: str) -> np.ndarray:
        return np.asarray(self.manifest.preprocess["primers"][genre], dtype=np.int64).reshape(-1, 2)

    def compose(
        self, genre: str, length: int, params: ms.SamplingParams, seed: int,
        primer: np.ndarray | None = None, on_event: Callable[[int, np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """``length`` events after ``primer`` (the genre's stored primer when None)."""
        gid = self.genre_id(genre)
        primer = self.primer_for(genre) if primer is None else me.validate(primer)
        state = self.initial_state(primer, gid)
        return ms.generate(self.step, primer[-1], state, length, params, seed, on_event=on_event)
