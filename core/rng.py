"""Seeded, counter-based random streams (Philox-4x64) in numpy.

Training data generation, export checks and the server all draw from
:class:`SeedStream`, so a seed means the same numbers everywhere. Only the raw
Philox bit stream comes from numpy (its bit generators are stable across
versions); every transform to floats is written here, because numpy's
``Generator`` distributions are not guaranteed to stay the same.
"""

from __future__ import annotations

import numpy as np

_MASK64 = (1 << 64) - 1


class SeedStream:
    """A Philox stream keyed by ``(seed, stream)``.

    ``stream`` separates independent uses of one seed (e.g. dataset sample i,
    request latents), so they never overlap.
    """

    def __init__(self, seed: int, stream: int = 0) -> None:
        if seed < 0 or stream < 0:
            raise ValueError("seed and stream must be non-negative integers")
        self.seed = int(seed)
        self.stream = int(stream)
        key = np.array([self.seed & _MASK64, self.stream & _MASK64], dtype=np.uint64)
        self._bits = np.random.Philox(key=key)

    def raw(self, n: int) -> np.ndarray:
        """``n`` raw 64-bit words."""
        return self._bits.random_raw(n).astype(np.uint64)

    def uniform(self, shape=(), low: float = 0.0, high: float = 1.0) -> np.ndarray:
        """float64 in [low, high) from the top 53 bits of each word."""
        n = int(np.prod(shape)) if shape != () else 1
        u = (self.raw(n) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
        out = low + (high - low) * u
        return out.reshape(shape) if shape != () else out[0]

    def normal(self, shape=(), mean: float = 0.0, std: float = 1.0) -> np.ndarray:
        """float64 standard normals by Box-Muller (two uniforms per pair)."""
        n = int(np.prod(shape)) if shape != () else 1
        m = (n + 1) // 2
        u1 = 1.0 - self.uniform((m,))  # (0, 1]: log stays finite
        u2 = self.uniform((m,))
        r = np.sqrt(-2.0 * np.log(u1))
        z = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)])[:n]
        out = mean + std * z
        return out.reshape(shape) if shape != () else out[0]

    def integers(self, low: int, high: int, shape=()) -> np.ndarray:
        """Integers in [low, high), by multiply-shift on 53-bit uniforms (bias < 2^-40 for small ranges)."""
        if high <= low:
            raise ValueError(f"empty range [{low}, {high})")
        u = self.uniform(shape)
        return (low + np.floor(u * (high - low))).astype(np.int64)

    def permutation(self, n: int) -> np.ndarray:
        """A permutation of range(n): argsort of uniforms (stable)."""
        return np.argsort(self.uniform((n,)), kind="stable")

    def choice(self, probs: np.ndarray) -> int:
        """Sample one index from a probability vector by inverse CDF."""
        cdf = np.cumsum(np.asarray(probs, dtype=np.float64))
        u = self.uniform() * cdf[-1]
        return int(min(np.searchsorted(cdf, u, side="right"), len(cdf) - 1))
