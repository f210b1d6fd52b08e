"""Torch view of a segmentation source: (normalized float32 CHW tensor, int64 mask).

A *source* is any sequence of ``(RGB uint8 (S, S, 3), mask uint8 (S, S))``
pairs: :class:`~seedlock.train.data.scenes.SceneSource` or
:class:`~seedlock.train.data.voc.SegmentationFolder`. Normalization is
:func:`seedlock.core.imaging.normalize`, the function the server applies, so
training and serving see the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from seedlock.core.errors import UserError
from seedlock.core.imaging import normalize
from seedlock.train.data.scenes import scene_splits
from seedlock.train.data.voc import SegmentationFolder


class Source(Protocol):
    labels: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]: ...


class SegmentationDataset(Dataset):
    """Wraps a source; with ``cache=True`` every sample is prepared once, up front.

    Caching is the default for the procedural scenes (drawing them again each
    epoch would cost more than the small model's step); turn it off for big
    folders.
    """

    def __init__(self, source: Source, mean: Sequence[float], std: Sequence[float], cache: bool = True) -> None:
        self.source = source
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.labels = list(source.labels)
        # masks are cached as uint8 (8x smaller) and widened per item
        self._cache = [self._prepare(i) for i in range(len(source))] if cache else None

    def _prepare(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.source[i]
        x = torch.from_numpy(normalize(image, self.mean, self.std)[0])
        return x, torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = self._cache[i] if self._cache is not None else self._prepare(i)
        return x, mask.long()

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The un-normalized (image, mask) pair, for pictures."""
        return self.source[i]


def build_sources(data: str, size: int, n_train: int, n_val: int, data_seed: int = 0) -> tuple[Source, Source]:
    """``data="scenes"`` -> procedural scenes; anything else is a VOC/ATR folder path."""
    if data == "scenes":
        return scene_splits(data_seed, n_train, n_val, size)
    root = Path(data).expanduser()
    if not root.exists():
        raise UserError(f"--data {data!r} is neither 'scenes' nor an existing folder")
    train, val = SegmentationFolder(root, "train", size), SegmentationFolder(root, "val", size)
    return _Head(train, n_train), _Head(val, n_val)


class _Head:
    """The first ``n`` items of a source (``n <= 0`` or None: all), to cap big folders."""

    def __init__(self, source: Source, n: int | None) -> None:
        self.source = source
        self.labels = source.labels
        self.n = len(source) if not n or n <= 0 else min(n, len(source))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.source[i]
