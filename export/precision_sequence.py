"""Agreement gates and int8 calibration sets of the two sequence tasks,
captioning and composition, for ``seedlock export … --precision bf16|int8``
(:mod:`seedlock.export.precision` registers them in its ``GATES``).

Gates (reference = the fp32 export on ONNX Runtime, candidate = the reduced
precision on OpenVINO; both decode through the served code paths):

============  =================================================================
captioning    ≥ 95 % of the validation images get the same greedy caption
              (token for token, up to the model's longest caption,
              ``postprocess.max_length``: a caption identical that far is
              identical at every length a request may ask for)
composition   ≥ 95 % of the validation primers (training's windows, per genre,
              20 to 64 of them) get the same first 32 greedy events
============  =================================================================

Calibration: the decoder-step graphs' inputs (recurrent states, memory,
tokens) exist only while decoding, so the fp32 sessions are wrapped in a
:class:`RecordingSession` that keeps a copy of every feed, and greedy decoding
runs on ``count`` seeded training images / training primers. Every encoder
feed is kept, and a seeded sample of at most :data:`MAX_STEP_FEEDS` step
feeds. One thread, fixed seeds: the same manifest, folder and seed give the
same arrays.

The data are rebuilt from the training config kept in the manifest and checked
against what training recorded (the captioner's vocabulary, the composer's
genres and stored primers): a model whose training data cannot be rebuilt (a
folder gone, pieces passed in memory) raises :class:`ExportError` saying so,
rather than gating on other data.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from seedlock.core.errors import UserError
from seedlock.core.manifest import Manifest
from seedlock.core.rng import SeedStream
from seedlock.export.errors import ExportError

if TYPE_CHECKING:  # precision imports this module to register the gates: Agreement is imported where used
    from seedlock.export.precision import Agreement

Feeds = dict[str, np.ndarray]
Sessions = Mapping[str, Any]
CalibrationSet = dict[str, list[Feeds]]

CAPTION_GATE = 0.95
COMPOSE_GATE = 0.95
COMPOSE_EVENTS = 32  # greedy events compared per primer, and generated per calibration primer
MIN_PRIMERS, MAX_PRIMERS = 20, 64
MAX_STEP_FEEDS = 256
STEP_SAMPLE_STREAM = 1  # SeedStream(seed, 1) picks the kept step feeds


class RecordingSession:
    """A session (ONNX Runtime's surface) that keeps a copy of every feed dict it runs."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.feeds: list[Feeds] = []

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_outputs(self) -> Any:
        return self.session.get_outputs()

    def get_providers(self) -> Any:
        return self.session.get_providers()

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray], run_options: Any = None) -> list[np.ndarray]:
        self.feeds.append({name: np.array(value, copy=True) for name, value in feeds.items()})
        if run_options is None:
            return self.session.run(output_names, feeds)
        return self.session.run(output_names, feeds, run_options)


def fp32_sessions(manifest: Manifest, folder: str | Path) -> dict[str, Any]:
    """ONNX Runtime sessions of an fp32 version's graphs, with the server's settings and the model's thread count."""
    from seedlock.core.sessions import SessionConfig, graph_sessions

    return graph_sessions(manifest, folder, SessionConfig(backend="onnxruntime"))


def sample_step_feeds(feeds: list[Feeds], seed: int, limit: int = MAX_STEP_FEEDS) -> list[Feeds]:
    """At most ``limit`` of ``feeds``, drawn from ``SeedStream(seed, 1)``, kept in recording order."""
    if len(feeds) <= limit:
        return list(feeds)
    keep = np.sort(SeedStream(seed, STEP_SAMPLE_STREAM).permutation(len(feeds))[:limit])
    return [feeds[int(i)] for i in keep]


def _known_fields(cls: type, config: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in config.items() if k in names}


# -- captioning ----------------------------------------------------------------------


@dataclass
class CaptionSplit:
    """The captioner's data split, rebuilt from its training config (images loaded on demand)."""

    cfg: Any  # CaptionConfig
    description: str
    train_count: int
    train_captions: list[list[str]]
    train_corpus: Any = None
    val_corpus: Any = None
    n_val: int = 0

    def train_images(self, indices: Sequence[int]) -> list[np.ndarray]:
        if self.cfg.data == "scenes":
            from seedlock.train.data.caption_scenes import make_caption_scene

            return [make_caption_scene(self.cfg.data_seed, int(i), self.cfg.size)[0] for i in indices]
        from seedlock.train.data.caption_folders import load_images

        return list(load_images(self.train_corpus.subset([int(i) for i in indices]), self.cfg.size))

    def val_images(self) -> list[np.ndarray]:
        if self.cfg.data == "scenes":
            from seedlock.train.data.caption_scenes import VAL_OFFSET, caption_scenes

            return list(caption_scenes(self.cfg.data_seed, self.n_val, self.cfg.size, offset=VAL_OFFSET)[0])
        from seedlock.train.data.caption_folders import load_images

        return list(load_images(self.val_corpus, self.cfg.size))


def caption_split(manifest: Manifest) -> CaptionSplit:
    """The split :func:`seedlock.train.caption_train.load_data` made for this model,
    checked against the model's vocabulary (built from the training captions)."""
    from seedlock.core.vocab import Vocabulary
    from seedlock.train.caption_train import SCENE_DEFAULTS, CaptionConfig, folder_split

    try:
        cfg = CaptionConfig(**_known_fields(CaptionConfig, manifest.config))
    except (TypeError, ValueError) as exc:
        raise ExportError(f"the captioner's training config cannot be read back ({exc}); export in fp32") from None
    if cfg.data == "scenes":
        from seedlock.train.data.caption_scenes import make_caption_scene

        n_train = cfg.n_train or SCENE_DEFAULTS["n_train"]
        n_val = cfg.n_val or SCENE_DEFAULTS["n_val"]
        # the captions of every training scene (drawing them is what makes a scene's captions)
        captions = [make_caption_scene(cfg.data_seed, i, cfg.size)[1] for i in range(n_train)]
        split = CaptionSplit(cfg, f"embedded scenes, data_seed {cfg.data_seed}", n_train, captions, n_val=n_val)
    else:
        from seedlock.train.data.caption_folders import load_caption_file

        try:
            corpus = load_caption_file(cfg.data, cfg.images, cfg.split)
        except UserError as exc:
            raise ExportError(
                f"cannot rebuild the captioner's training data from its config ({exc}); put the caption file and images "
                "back where training read them, or export in fp32"
            ) from None
        if len(corpus) < 2:
            raise ExportError(f"{cfg.data}: {len(corpus)} captioned image(s), training needed at least 2; export in fp32")
        train, val = folder_split(len(corpus), cfg)  # as training split it
        tr, va = corpus.subset(train), corpus.subset(val)
        split = CaptionSplit(cfg, f"{cfg.data}, data_seed {cfg.data_seed}", len(tr), tr.captions, tr, va, len(va))
    vocab = Vocabulary.build((c for caps in split.train_captions for c in caps), cfg.min_count)
    if list(vocab.itos) != [str(w) for w in manifest.labels]:
        raise ExportError(
            f"the training split rebuilt from the captioner's config ({split.description}) gives a vocabulary of "
            f"{len(vocab.itos)} words, not the model's {len(manifest.labels)}: the model was trained on other data "
            "(passed in memory, or files changed since). The precision gate needs the training data; export in fp32, "
            "or retrain with `seedlock train caption` on data its config names"
        )
    return split


def caption_agreement(spec: Any, images: Sequence[np.ndarray], reference: Sessions, candidate: Sessions, max_length: int) -> Agreement:
    """The captioning gate on ``images``: the fraction whose greedy token sequence is the same on both session sets."""
    from seedlock.export.precision import Agreement

    if not len(images):
        raise ExportError("the captioning gate has no validation images to compare on")
    graphs = spec.graphs(reference), spec.graphs(candidate)
    differ = 0
    for image in images:
        a, b = (spec.caption(g, image, beam=1, max_length=max_length)[0].tokens for g in graphs)
        differ += int(a != b)
    n = len(images)
    return Agreement("greedy captions identical to fp32 (validation split)", (n - differ) / n, CAPTION_GATE, n,
                     f"{differ} of {n} captions differ (greedy, up to {max_length} tokens)")  # fmt: skip


def caption_gate(manifest: Manifest, reference_sessions: Sessions, candidate_sessions: Sessions) -> Agreement:
    """Greedy captions of every validation image of the training split, fp32 vs candidate."""
    from seedlock.core.captioning import CaptioningSpec

    spec = CaptioningSpec.from_manifest(manifest)
    images = caption_split(manifest).val_images()
    return caption_agreement(spec, images, reference_sessions, candidate_sessions, spec.decoder.max_length)


def caption_calibration_feeds(spec: Any, sessions: Sessions, images: Sequence[np.ndarray], max_length: int, seed: int) -> CalibrationSet:
    """Every encoder feed and a seeded sample of the decoder-step feeds of greedy-captioning ``images`` one by one on ``sessions``."""
    from seedlock.core.captioning import DECODER_STEP, ENCODER

    recorders = {role: RecordingSession(sessions[role]) for role in (ENCODER, DECODER_STEP)}
    graphs = spec.graphs(recorders)
    for image in images:
        spec.caption(graphs, image, beam=1, max_length=max_length)
    return {ENCODER: recorders[ENCODER].feeds, DECODER_STEP: sample_step_feeds(recorders[DECODER_STEP].feeds, seed)}


def caption_calibration(manifest: Manifest, folder: str | Path, count: int, seed: int) -> tuple[CalibrationSet, str]:
    """int8 calibration feeds of both captioning graphs: greedy captions of
    ``count`` seeded training images on the fp32 version in ``folder``."""
    from seedlock.core.captioning import DECODER_STEP, CaptioningSpec

    spec = CaptioningSpec.from_manifest(manifest)
    split = caption_split(manifest)
    picked = SeedStream(seed).permutation(split.train_count)[:count]
    feeds = caption_calibration_feeds(spec, fp32_sessions(manifest, folder), split.train_images(picked), spec.decoder.max_length, seed)
    source = (f"training split ({split.description}): greedy captions of {len(picked)} of {split.train_count} images, "
              f"{len(feeds[DECODER_STEP])} decoder steps kept")  # fmt: skip
    return feeds, source


# -- composition ----------------------------------------------------------------------


@dataclass
class ComposeSplit:
    """The composer's data, rebuilt from its training config, with the settings training windowed it with."""

    cfg: Any  # ComposeConfig
    data: Any  # MusicData
    description: str


def compose_split(manifest: Manifest) -> ComposeSplit:
    """The pieces :func:`seedlock.train.compose_train.load_data` split for this
    model, checked against its genres and the primers training stored."""
    from seedlock.core.composition import CompositionSpec
    from seedlock.train import compose_train as ct
    from seedlock.train.data import music_corpus as mc

    spec = CompositionSpec.from_manifest(manifest)
    raw = dict(manifest.config)
    # Before `--split-seed` existed the model seed split the data: a config without split_seed was split by its seed.
    split_seed = raw.get("split_seed", raw.get("seed"))
    if split_seed is None:
        raise ExportError("the composer's training config records neither split_seed nor seed: cannot rebuild its data split")
    try:
        cfg = ct.ComposeConfig(**{**_known_fields(ct.ComposeConfig, raw), "split_seed": int(split_seed), "progress": False})
    except (TypeError, ValueError) as exc:
        raise ExportError(f"the composer's training config cannot be read back ({exc}); export in fp32") from None
    trained_on = ("retrain with `seedlock train compose` on the corpus or a folder its config names, or export in fp32 "
                  "(the precision gate needs the training data)")  # fmt: skip
    if cfg.data == "corpus":
        named = list(cfg.genres or mc.GENRE_NAMES)
        if named != list(spec.genres):
            raise ExportError(f"the composer's config names the music21 corpus (genres {named}) but the model knows genres "
                              f"{list(spec.genres)}: it was trained on other data (pieces passed in memory); {trained_on}")  # fmt: skip
    try:
        data = ct.load_data(cfg)
    except UserError as exc:
        raise ExportError(f"cannot rebuild the composer's training data from its config ({exc}); restore it, or {trained_on}") from None
    where = "the music21 corpus" if cfg.data == "corpus" else cfg.data
    if list(data.genres) != list(spec.genres):
        raise ExportError(f"{where} now holds genres {list(data.genres)}, the model was trained on {list(spec.genres)}; {trained_on}")
    rebuilt = ct.genre_primers(data, cfg.window)
    stored = {g: spec.primer_for(g).tolist() for g in spec.genres}
    if rebuilt != stored:
        differ = [g for g in spec.genres if rebuilt.get(g) != stored[g]]
        raise ExportError(f"the training split rebuilt from the composer's config ({where}, split seed {cfg.split_seed}) does not "
                          f"open with the primers training stored (genres {differ} differ): the model was trained on other "
                          f"data; {trained_on}")  # fmt: skip
    return ComposeSplit(cfg, data, f"{where}, split seed {cfg.split_seed}")


def _spread_per_genre(genre: np.ndarray, genres: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` windows, an equal share per genre, evenly spread within each genre."""
    share = max(1, limit // max(genres, 1))
    picked = []
    for g in range(genres):
        own = np.flatnonzero(genre == g)
        if len(own):
            picked.append(own[np.unique(np.linspace(0, len(own) - 1, min(share, len(own))).round().astype(int))])
    return np.concatenate(picked)[:limit] if picked else np.zeros(0, np.int64)


def validation_primers(split: ComposeSplit, limit: int = MAX_PRIMERS, least: int = MIN_PRIMERS) -> list[tuple[np.ndarray, int]]:
    """``(primer, genre id)`` of the validation windows as training makes them
    (window, horizon, stride of the config), an equal share per genre; when
    that gives fewer than ``least``, the windows at every event (stride 1)."""
    from seedlock.train import compose_train as ct

    cfg, data = split.cfg, split.data
    for stride in dict.fromkeys((cfg.stride, 1)):
        w = ct.make_windows(data.validation, list(data.genres), cfg.window, cfg.horizon, stride)
        idx = _spread_per_genre(w.genre, len(data.genres), limit)
        if len(idx) >= least:
            break
    if not len(idx):
        raise ExportError(f"the validation split ({split.description}) has no {cfg.window}+{cfg.horizon}-event window to prime with")
    return [(w.src[i], int(w.genre[i])) for i in idx]


def training_primers(split: ComposeSplit, count: int, seed: int) -> tuple[list[tuple[np.ndarray, int]], int]:
    """``count`` seeded ``(primer, genre id)`` of the training windows the model was fitted on, and how many there were."""
    from seedlock.train import compose_train as ct

    cfg, data = split.cfg, split.data
    w = ct.cap_windows(ct.make_windows(data.train, list(data.genres), cfg.window, cfg.horizon, cfg.stride), cfg)
    if not len(w):
        raise ExportError(f"the training split ({split.description}) has no {cfg.window}+{cfg.horizon}-event window")
    picked = SeedStream(seed).permutation(len(w))[:count]
    return [(w.src[int(i)], int(w.genre[int(i)])) for i in picked], len(w)


def _greedy_events(composer: Any, primer: np.ndarray, genre: int, length: int) -> np.ndarray:
    from seedlock.core import music_sampling as ms

    return composer.compose(composer.genres[genre], length, ms.SamplingParams("greedy"), 0, primer=primer)


def compose_agreement(spec: Any, primers: Sequence[tuple[np.ndarray, int]], reference: Sessions, candidate: Sessions,
                      length: int = COMPOSE_EVENTS) -> Agreement:  # fmt: skip
    """The composition gate on ``primers``: the fraction whose first ``length`` greedy events are the same on both session sets."""
    from seedlock.core.composition import ENCODER, STEP, GraphComposer
    from seedlock.export.precision import Agreement

    if not len(primers):
        raise ExportError("the composition gate has no primers to compare on")
    composers = [GraphComposer(s[ENCODER], s[STEP], spec) for s in (reference, candidate)]
    differ = 0
    for primer, genre in primers:
        a, b = (_greedy_events(c, primer, genre, length) for c in composers)
        differ += int(not np.array_equal(a, b))
    n = len(primers)
    return Agreement(f"first {length} greedy events identical to fp32 (validation primers)", (n - differ) / n, COMPOSE_GATE, n,
                     f"{differ} of {n} melodies differ")  # fmt: skip


def compose_gate(manifest: Manifest, reference_sessions: Sessions, candidate_sessions: Sessions) -> Agreement:
    """The first 32 greedy events after each validation primer (same genre), fp32 vs candidate."""
    from seedlock.core.composition import CompositionSpec

    spec = CompositionSpec.from_manifest(manifest)
    return compose_agreement(spec, validation_primers(compose_split(manifest)), reference_sessions, candidate_sessions)


def compose_calibration_feeds(spec: Any, sessions: Sessions, primers: Sequence[tuple[np.ndarray, int]], seed: int,
                              length: int = COMPOSE_EVENTS) -> CalibrationSet:  # fmt: skip
    """Every encoder feed and a seeded sample of the decoder-step feeds of greedy-generating ``length`` events after each primer."""
    from seedlock.core.composition import ENCODER, STEP, GraphComposer

    recorders = {role: RecordingSession(sessions[role]) for role in (ENCODER, STEP)}
    composer = GraphComposer(recorders[ENCODER], recorders[STEP], spec)
    for primer, genre in primers:
        _greedy_events(composer, primer, genre, length)
    return {ENCODER: recorders[ENCODER].feeds, STEP: sample_step_feeds(recorders[STEP].feeds, seed)}


def compose_calibration(manifest: Manifest, folder: str | Path, count: int, seed: int) -> tuple[CalibrationSet, str]:
    """int8 calibration feeds of both composition graphs: 32 greedy events after
    ``count`` seeded training windows on the fp32 version in ``folder``."""
    from seedlock.core.composition import STEP, CompositionSpec

    spec = CompositionSpec.from_manifest(manifest)
    split = compose_split(manifest)
    primers, total = training_primers(split, count, seed)
    feeds = compose_calibration_feeds(spec, fp32_sessions(manifest, folder), primers, seed)
    source = (f"training split ({split.description}): {COMPOSE_EVENTS} greedy events after {len(primers)} of {total} "
              f"training windows, {len(feeds[STEP])} decoder steps kept")  # fmt: skip
    return feeds, source


__all__ = [
    "RecordingSession", "caption_gate", "caption_calibration", "compose_gate", "compose_calibration",
    "caption_agreement", "caption_calibration_feeds", "compose_agreement", "compose_calibration_feeds",
    "caption_split", "compose_split", "validation_primers", "training_primers", "fp32_sessions",
]  # fmt: skip
