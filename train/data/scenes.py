"""The embedded segmentation dataset: procedural scenes drawn from a seed.

No machine here reaches the internet, so the segmentation pipeline ships its
own data. Each scene is drawn from ``SeedStream(seed, index)``, so sample
``(seed, index)`` is the same image and mask on every machine and in every
process (DDP ranks, export checks, the server's demo).

What a scene holds, and why:

* a background with a colour gradient and smooth blotches (class 0), so
  "dark = background" is not a rule the model can learn;
* large regions: striped slabs (rotated rectangles), shaded discs
  (ellipses) and blotchy shards (polygons), which occlude each other;
* fine parts, the thesis's point (4.4): wires (curves 1-3 px thick), specks
  (blobs of radius 1-3 px) and rings (ellipse outlines 1-2 px thick).

Each class has a preferred hue, but hues are jittered so neighbours overlap,
the background may take any hue, and per-class textures plus sensor noise are
added: colour helps, shape and texture decide. numpy + OpenCV only.
"""

from __future__ import annotations

import cv2
import numpy as np

from seedlock.core.rng import SeedStream

SCENE_CLASSES = ("background", "slab", "disc", "shard", "wire", "speck", "ring")
BACKGROUND, SLAB, DISC, SHARD, WIRE, SPECK, RING = range(len(SCENE_CLASSES))
FINE_CLASSES = (WIRE, SPECK, RING)

# Validation scenes use stream indices from here on, so the validation set does
# not change when n_train does and never overlaps the training scenes.
VAL_OFFSET = 1 << 32

# OpenCV hue (0-180) each class centres on; +-HUE_JITTER makes neighbours overlap.
_HUE = {SLAB: 0, DISC: 30, SHARD: 60, WIRE: 90, SPECK: 120, RING: 150}
_HUE_JITTER = 25.0


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    hsv = np.array([[[h % 180, s, v]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _class_colour(rs: SeedStream, cls: int) -> np.ndarray:
    hue = _HUE[cls] + rs.uniform((), -_HUE_JITTER, _HUE_JITTER)
    return _hsv_to_rgb(hue, rs.uniform((), 90, 255), rs.uniform((), 110, 255))


def _smooth_noise(rs: SeedStream, size: int, cells: int, channels: int, nearest: bool = False) -> np.ndarray:
    """Noise in [-1, 1) that varies over ``size / cells`` pixels (blocky when ``nearest``)."""
    grid = rs.uniform((cells, cells, channels), -1.0, 1.0).astype(np.float32)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_CUBIC
    out = cv2.resize(grid, (size, size), interpolation=interp)
    return out.reshape(size, size, channels)


def _background(rs: SeedStream, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    c0 = _hsv_to_rgb(rs.uniform((), 0, 180), rs.uniform((), 0, 140), rs.uniform((), 40, 220))
    c1 = _hsv_to_rgb(rs.uniform((), 0, 180), rs.uniform((), 0, 140), rs.uniform((), 40, 220))
    theta = rs.uniform((), 0, 2 * np.pi)
    t = (np.cos(theta) * xx + np.sin(theta) * yy) / size  # in about [-1.4, 1.4]
    t = ((t - t.min()) / max(float(np.ptp(t)), 1e-6))[..., None]
    img = (1 - t) * c0 + t * c1
    return img + 35.0 * _smooth_noise(rs, size, 5, 3)


def _paint(img: np.ndarray, mask: np.ndarray, shape: np.ndarray, texture: np.ndarray, cls: int) -> None:
    where = shape.astype(bool)
    img[where] = texture[where]
    mask[where] = cls


def _point(rs: SeedStream, size: int, margin: float = 0.1) -> tuple[int, int]:
    x, y = rs.uniform((2,), margin * size, (1 - margin) * size)
    return int(x), int(y)


def _slab(rs: SeedStream, size: int, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shape = np.zeros((size, size), np.uint8)
    cx, cy = _point(rs, size)
    w, h = rs.uniform((2,), 0.15 * size, 0.45 * size)
    angle = rs.uniform((), 0, 180)
    box = cv2.boxPoints(((cx, cy), (float(w), float(h)), float(angle))).astype(np.int32)
    cv2.fillPoly(shape, [box], 1, lineType=cv2.LINE_8)
    # stripes across the slab: a texture the other region classes do not have
    period = rs.uniform((), 4.0, 10.0)
    phi = rs.uniform((), 0, np.pi)
    stripes = np.sin(2 * np.pi * (np.cos(phi) * xx + np.sin(phi) * yy) / period)
    tex = _class_colour(rs, SLAB) * (1.0 + 0.25 * stripes)[..., None]
    return shape, tex


def _disc(rs: SeedStream, size: int, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shape = np.zeros((size, size), np.uint8)
    cx, cy = _point(rs, size)
    ax, ay = rs.uniform((2,), 0.08 * size, 0.22 * size)
    cv2.ellipse(shape, (cx, cy), (int(ax), int(ay)), float(rs.uniform((), 0, 180)), 0, 360, 1, -1, cv2.LINE_8)
    # radial shading: bright centre, darker rim
    r = np.sqrt(((xx - cx) / max(ax, 1)) ** 2 + ((yy - cy) / max(ay, 1)) ** 2)
    tex = _class_colour(rs, DISC) * (1.25 - 0.5 * np.clip(r, 0, 1))[..., None]
    return shape, tex


def _shard(rs: SeedStream, size: int, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shape = np.zeros((size, size), np.uint8)
    cx, cy = _point(rs, size)
    k = int(rs.integers(3, 6))
    angles = np.sort(rs.uniform((k,), 0, 2 * np.pi))
    radii = rs.uniform((k,), 0.1 * size, 0.3 * size)
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)
    cv2.fillPoly(shape, [pts], 1, lineType=cv2.LINE_8)
    blotches = _smooth_noise(rs, size, 8, 1, nearest=True)
    tex = _class_colour(rs, SHARD) * (1.0 + 0.3 * blotches)
    return shape, tex


def _wire(rs: SeedStream, size: int) -> np.ndarray:
    shape = np.zeros((size, size), np.uint8)
    k = int(rs.integers(2, 5))
    pts = rs.uniform((k, 2), 0, size).astype(np.int32)
    cv2.polylines(shape, [pts], False, 1, int(rs.integers(1, 4)), cv2.LINE_8)
    return shape


def _speck(rs: SeedStream, size: int) -> np.ndarray:
    shape = np.zeros((size, size), np.uint8)
    cv2.circle(shape, _point(rs, size, 0.02), int(rs.integers(1, 4)), 1, -1, cv2.LINE_8)
    return shape


def _ring(rs: SeedStream, size: int) -> np.ndarray:
    shape = np.zeros((size, size), np.uint8)
    axes = rs.uniform((2,), 0.08 * size, 0.2 * size).astype(int)
    angle = float(rs.uniform((), 0, 180))
    cv2.ellipse(shape, _point(rs, size), (int(axes[0]), int(axes[1])), angle, 0, 360, 1, int(rs.integers(1, 3)), cv2.LINE_8)
    return shape


_REGIONS = ((SLAB, _slab), (DISC, _disc), (SHARD, _shard))


def make_scene(seed: int, index: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Scene ``index`` of the dataset keyed by ``seed``: (RGB uint8 (S, S, 3), class mask uint8 (S, S)).

    Deterministic: the same ``(seed, index, size)`` gives the same arrays.
    Class names are :data:`SCENE_CLASSES`.
    """
    if size < 8:
        raise ValueError(f"scene size must be >= 8 pixels, got {size}")
    rs = SeedStream(seed, index)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = _background(rs, size, yy, xx)
    mask = np.zeros((size, size), np.uint8)

    # Cycle through a shuffled order of region kinds, so most scenes show two or three kinds.
    order = rs.permutation(len(_REGIONS))
    for k in range(int(rs.integers(2, 6))):
        cls, draw = _REGIONS[int(order[k % len(order)])]
        shape, tex = draw(rs, size, yy, xx)
        _paint(img, mask, shape, tex, cls)
    # fine parts go on top, so occlusion never hides them completely
    for cls, draw, lo, hi in ((RING, _ring, 1, 3), (WIRE, _wire, 2, 5), (SPECK, _speck, 3, 9)):
        for _ in range(int(rs.integers(lo, hi))):
            colour = np.broadcast_to(_class_colour(rs, cls), img.shape)
            _paint(img, mask, draw(rs, size), colour, cls)

    img = img + rs.normal((size, size, 3), 0.0, 8.0).astype(np.float32)  # sensor noise
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), mask


class SceneSource:
    """``count`` scenes of ``seed`` starting at stream index ``start``, as a sequence of (image, mask)."""

    def __init__(self, seed: int, count: int, size: int, start: int = 0) -> None:
        if count < 0:
            raise ValueError(f"scene count must be >= 0, got {count}")
        self.seed, self.count, self.size, self.start = int(seed), int(count), int(size), int(start)
        self.labels = list(SCENE_CLASSES)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= i < self.count:
            raise IndexError(i)
        return make_scene(self.seed, self.start + i, self.size)


def scene_splits(seed: int, n_train: int, n_val: int, size: int) -> tuple[SceneSource, SceneSource]:
    """Train scenes at indices ``0..n_train-1``, validation scenes from :data:`VAL_OFFSET`."""
    return SceneSource(seed, n_train, size, 0), SceneSource(seed, n_val, size, VAL_OFFSET)
