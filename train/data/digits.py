"""Real handwritten digits, offline: scikit-learn's bundled ``load_digits``.

1797 greyscale 8×8 images of the digits 0–9 (UCI optical recognition set),
installed with scikit-learn; the closest real stand-in for the thesis's MNIST
that needs no download. Splits come from ``split_seed`` alone, never from a
model seed, so changing the model seed changes only the initialisation and
batch order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seedlock.core.rng import SeedStream

SPLIT_STREAM = 0xD161  # SeedStream stream id of the split permutation
FRACTIONS = (0.6, 0.2, 0.2)  # train / validation / test


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # float32 (N, 1, 8, 8), scaled to [0, 1]
    labels: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Digits:
    train: Split
    val: Split
    test: Split
    split_seed: int


def load_digits(split_seed: int = 0) -> Digits:
    """The digits in stratified 60/20/20 train/validation/test splits drawn from ``split_seed``."""
    from sklearn.datasets import load_digits as sk_load_digits

    raw = sk_load_digits()
    images = (raw.images.astype(np.float32) / 16.0)[:, None]
    labels = raw.target.astype(np.int64)
    parts: list[list[np.ndarray]] = [[], [], []]
    # Stratified: each class is permuted on its own stream and cut by FRACTIONS.
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        idx = idx[SeedStream(split_seed, SPLIT_STREAM + c).permutation(len(idx))]
        n_train = round(FRACTIONS[0] * len(idx))
        n_val = round(FRACTIONS[1] * len(idx))
        for part, chunk in zip(parts, (idx[:n_train], idx[n_train : n_train + n_val], idx[n_train + n_val :])):
            part.append(chunk)
    splits = [np.sort(np.concatenate(p)) for p in parts]
    return Digits(*(Split(images[s], labels[s]) for s in splits), split_seed=split_seed)
