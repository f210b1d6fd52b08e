"""The caption vocabulary, shared by training, export and the server (stdlib only).

Token ids are fixed for the special tokens so every graph and every client
agrees on them without reading anything:

    0 <pad>   padding (never predicted; ignored by the loss)
    1 <start> first token of every prefix
    2 <end>   ends a caption
    3 <unk>   any word below the frequency threshold

Then the kept words, most frequent first (ties alphabetical), so building the
same captions with the same threshold always gives the same ids.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = range(4)

_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case words of letters and digits; punctuation is dropped."""
    return _WORD.findall(text.lower())


class Vocabulary:
    """Word <-> id table. Build with :meth:`build`; persist with :meth:`to_json`."""

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {tokens[:4]}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.itos: list[str] = tokens
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> "Vocabulary":
        """Keep every word seen at least ``min_count`` times in ``captions``."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts = Counter(w for c in captions for w in tokenize(c))
        words = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIALS), key=lambda w: (-counts[w], w))
        return cls(list(SPECIALS) + words)

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def encode(self, text: str | Sequence[str], add_special: bool = True) -> list[int]:
        """Ids of a caption (text or words): ``<start> w1 .. wn <end>`` when ``add_special``."""
        words = tokenize(text) if isinstance(text, str) else list(text)
        ids = [self.stoi.get(w, UNK_ID) for w in words]
        return [START_ID, *ids, END_ID] if add_special else ids

    def words(self, ids: Iterable[int]) -> list[str]:
        """Words of an id sequence: stops at ``<end>``, skips ``<start>``/``<pad>``."""
        out = []
        for i in ids:
            i = int(i)
            if i == END_ID:
                break
            if i in (START_ID, PAD_ID):
                continue
            out.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words(ids))

    # -- persistence ----------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({"format": "seedlock-vocab/1", "tokens": self.itos}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        try:
            data = json.loads(text)
            if data.get("format") != "seedlock-vocab/1":
                raise ValueError(f"unknown vocabulary format {data.get('format')!r}")
            return cls(data["tokens"])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed vocabulary JSON: {exc}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        return cls.from_json(Path(path).read_text())
