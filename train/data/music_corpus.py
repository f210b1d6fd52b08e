"""Real melodies for the composer: the music21 corpus, or a user's folder.

Nine genres from the corpus that installs with music21 (the thesis trained on
nine genres, 420 songs). Each genre lists corpus paths (globs relative to the
corpus root); :data:`PER_GENRE` pieces are taken evenly spread over the sorted
matches, so the selection is fixed for a corpus version. ABC collections hold
many tunes per file (an *opus*); each tune is one piece.

Extraction (:func:`seedlock.core.music_events.events_from_score`) is slow, so
every piece's event array is cached under ``$SEEDLOCK_CACHE/music`` (default
``~/.cache/seedlock/music``) in a folder keyed by the music21 version, the
event vocabulary version and the genre table; a killed extraction resumes
where it stopped.

Splits are by piece, never by window: a seeded permutation of each genre's
pieces (:class:`~seedlock.core.rng.SeedStream`) gives train/validation/test.
The seed here is the data's own (``ComposeConfig.split_seed``, ``--split-seed``),
never the model's, so runs that differ only in their model seed see the same music.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from seedlock.core import music_events as me
from seedlock.core.errors import UserError
from seedlock.core.rng import SeedStream

# genre -> (description, corpus path globs). Order = genre id.
GENRES: dict[str, tuple[str, tuple[str, ...]]] = {
    "bach": ("J. S. Bach chorales (soprano)", ("bach/bwv*.mxl",)),
    "palestrina": ("Palestrina mass movements (top voice)", ("palestrina/*.krn",)),
    "monteverdi": ("Monteverdi madrigals, books 3-5 (top voice)", ("monteverdi/madrigal.*.mxl",)),
    "trecento": ("Italian trecento songs (top voice)", ("trecento/*.xml", "trecento/*.mxl")),
    "ryans": ("Ryan's Mammoth Collection fiddle tunes", ("ryansMammoth/*.abc",)),
    "oneills": ("O'Neill's Music of Ireland (1850) tunes", ("oneills1850/*.abc",)),
    "essen": ("Essen folk songs", ("essenFolksong/*.abc",)),
    "quartets": ("Classical string quartets: Haydn, Mozart, Beethoven op. 18 (first violin)",
                 ("haydn/*/*.mxl", "mozart/*/*.mxl", "beethoven/opus18no*/*.krn")),
    "airds": ("Aird's Selection of Scotch, English, Irish and Foreign Airs", ("airdsAirs/*.abc",)),
}
GENRE_NAMES: list[str] = list(GENRES)
PER_GENRE = 52  # 8 x 52 + the 29 quartet movements -> ~440 pieces (>= the thesis's 420)
MIN_EVENTS = 8  # shorter melodies (fragments, incipits) are skipped
EXTRACT_VERSION = 1  # bump when extraction rules change: invalidates caches


@dataclass
class Piece:
    genre: str
    source: str  # corpus path (+ '#n' for the n-th tune of an opus) or file path
    events: np.ndarray


@dataclass
class MusicData:
    """Pieces by split; ``genres`` fixes genre ids (index = id)."""

    genres: list[str]
    train: list[Piece] = field(default_factory=list)
    validation: list[Piece] = field(default_factory=list)
    test: list[Piece] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for split in ("train", "validation", "test"):
            for p in getattr(self, split):
                out.setdefault(p.genre, {"train": 0, "validation": 0, "test": 0})[split] += 1
        return out


def cache_root() -> Path:
    base = os.environ.get("SEEDLOCK_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "seedlock") / "music"


def _corpus_root() -> Path:
    from music21 import corpus

    paths = corpus.getCorePaths()
    if not paths:
        raise UserError("the music21 corpus is not installed (pip install music21 ships it)")
    p = str(paths[0])
    return Path(p[: p.index("/corpus/") + len("/corpus/")])


def corpus_files(genre: str, per_genre: int = PER_GENRE) -> list[str]:
    """The corpus paths (relative to the corpus root) a genre draws from, evenly spread."""
    root = _corpus_root()
    rel = sorted({str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()})
    matches = [r for r in rel if any(fnmatch.fnmatch(r, g) for g in GENRES[genre][1])]
    if genre in ("oneills", "essen", "airds"):
        return matches  # opus files: tunes are taken from the first files until the quota
    if len(matches) <= per_genre:
        return matches
    idx = np.linspace(0, len(matches) - 1, per_genre).round().astype(int)
    return [matches[i] for i in idx]


def cache_key(genres: Iterable[str], per_genre: int) -> str:
    import music21

    table = {g: GENRES[g][1] for g in genres}
    blob = json.dumps([music21.__version__, me.VOCAB_VERSION, EXTRACT_VERSION, per_genre, table], sort_keys=True)
    return f"m21-{music21.__version__}-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _extract_genre(genre: str, folder: Path, per_genre: int, tick: Callable[[int], None]) -> list[Piece]:
    from music21 import corpus, stream

    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "done.json"
    if done.is_file():
        sources = json.loads(done.read_text())
        pieces = [Piece(genre, s, np.load(folder / f"{_safe(s)}.npy")) for s in sources]
        tick(len(pieces))
        return pieces
    pieces: list[Piece] = []
    for rel in corpus_files(genre, per_genre):
        if len(pieces) >= per_genre:
            break
        marker = folder / f"{_safe(rel)}.json"  # per-file resume point
        if marker.is_file():
            sources = json.loads(marker.read_text())
        else:
            try:
                parsed = corpus.parse(rel)
            except Exception:  # a corpus file music21 cannot read: skip it, the quota absorbs it
                sources = []
            else:
                scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
                sources = []
                for i, score in enumerate(scores):
                    if len(pieces) + len(sources) >= per_genre:
                        break
                    source = f"{rel}#{i}" if isinstance(parsed, stream.Opus) else rel
                    try:
                        ev = me.events_from_score(score)
                    except Exception:
                        continue
                    if len(ev) >= MIN_EVENTS:
                        np.save(folder / f"{_safe(source)}.npy", ev)
                        sources.append(source)
            marker.write_text(json.dumps(sources))
        for s in sources[: per_genre - len(pieces)]:
            pieces.append(Piece(genre, s, np.load(folder / f"{_safe(s)}.npy")))
            tick(1)
    done.write_text(json.dumps([p.source for p in pieces]))
    return pieces


def load_corpus_pieces(
    genres: Iterable[str] | None = None, per_genre: int = PER_GENRE, progress: bool = True
) -> list[Piece]:
    """Every selected piece of the given genres (all nine by default), extracting on first use."""
    genres = list(genres or GENRE_NAMES)
    unknown = [g for g in genres if g not in GENRES]
    if unknown:
        raise UserError(f"unknown genre(s) {', '.join(unknown)}; known: {', '.join(GENRE_NAMES)}")
    root = cache_root() / cache_key(GENRE_NAMES, per_genre)
    from tqdm import tqdm

    bar = tqdm(total=per_genre * len(genres), desc="music21 corpus → events", unit="piece", disable=not progress, leave=False)
    pieces: list[Piece] = []
    try:
        for g in genres:
            bar.set_postfix_str(g)
            pieces += _extract_genre(g, root / g, per_genre, bar.update)
    finally:
        bar.close()
    return pieces


def split_pieces(
    pieces: list[Piece], genres: list[str], seed: int = 0, fractions: tuple[float, float] = (0.8, 0.1)
) -> MusicData:
    """Split each genre's pieces by a permutation drawn from the split seed ``seed`` (train/validation/test, rest = test).

    Every genre with >= 3 pieces gets at least one validation and one test piece.
    """
    data = MusicData(genres=list(genres))
    for gi, g in enumerate(genres):
        own = sorted((p for p in pieces if p.genre == g), key=lambda p: p.source)
        n = len(own)
        if n == 0:
            continue
        order = SeedStream(seed, 1000 + gi).permutation(n)
        n_val = max(1, round(n * fractions[1])) if n >= 3 else 0
        n_test = max(1, n - round(n * fractions[0]) - n_val) if n >= 3 else 0
        n_train = n - n_val - n_test
        picked = [own[i] for i in order]
        data.train += picked[:n_train]
        data.validation += picked[n_train : n_train + n_val]
        data.test += picked[n_train + n_val :]
    return data


def load_corpus(
    genres: Iterable[str] | None = None, per_genre: int = PER_GENRE, seed: int = 0, progress: bool = True
) -> MusicData:
    """The corpus melodies of ``genres``, split by piece with the split seed ``seed``."""
    genres = list(genres or GENRE_NAMES)
    return split_pieces(load_corpus_pieces(genres, per_genre, progress), genres, seed)


MUSIC_SUFFIXES = (".mid", ".midi", ".musicxml", ".xml", ".mxl")


def load_folder(folder: str | Path, seed: int = 0, progress: bool = True) -> MusicData:
    """A user's collection: ``folder/<genre>/*.{mid,midi,musicxml,xml,mxl}`` (genre = subfolder name), split with the split seed ``seed``.

    Unreadable files are reported and skipped; an empty result is a UserError.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"music folder not found: {folder}")
    genres = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not genres:
        raise UserError(f"{folder} has no genre subfolders (expected {folder}/<genre>/<files>.mid|.musicxml)")
    files = [(g, f) for g in genres for f in sorted((folder / g).rglob("*")) if f.suffix.lower() in MUSIC_SUFFIXES]
    from tqdm import tqdm

    pieces, skipped = [], []
    for g, f in tqdm(files, desc=f"reading {folder}", unit="file", disable=not progress, leave=False):
        try:
            ev = me.events_from_bytes(f.read_bytes())
        except (me.MusicDecodeError, ValueError, OSError) as exc:
            skipped.append(f"{f}: {exc}")
            continue
        if len(ev) >= MIN_EVENTS:
            pieces.append(Piece(g, str(f.relative_to(folder)), ev))
    for line in skipped[:5]:
        print(f"skipped {line}")
    if not pieces:
        raise UserError(f"no readable melodies (>= {MIN_EVENTS} events) under {folder}")
    genres = [g for g in genres if any(p.genre == g for p in pieces)]
    return split_pieces(pieces, genres, seed)


def main() -> None:  # `python -m seedlock.train.data.music_corpus` warms the cache
    data = load_corpus()
    summary = data.summary()
    total = sum(sum(v.values()) for v in summary.values())
    print(json.dumps({"pieces": total, "by_genre": summary}, indent=1))


if __name__ == "__main__":
    main()
