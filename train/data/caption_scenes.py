"""The embedded captioning dataset: procedural scenes with five reference captions.

Scene ``(seed, index)`` is drawn from ``SeedStream(seed, index)``, so it is the
same picture and the same captions on every machine. A scene holds two or
three objects, each a shape (circle, square, triangle, diamond) in a colour
(red, green, blue, yellow, purple, white) and a size (small, large), placed
without overlap on a noisy, dim background. The first two objects are placed
so that their relation is clear: one is clearly left of / right of / above /
below the other.

Each scene has five captions written from different templates (relation
first or second object first, with or without sizes, "there is ...", a
count, synonyms big/large and small/little), so corpus BLEU against five
references is meaningful, as with Flickr8k: a model that gets colours and
shapes right but picks another template still scores partial n-gram matches.
numpy + OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from seedlock.core.rng import SeedStream

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 45, 40),
    "green": (40, 185, 65),
    "blue": (55, 90, 235),
    "yellow": (240, 215, 40),
    "purple": (150, 60, 205),
    "white": (235, 235, 235),
}
SIZES = ("small", "large")
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
# Validation scenes use stream indices from here on: they never overlap training.
VAL_OFFSET = 1 << 32
COUNT_WORDS = {2: "two", 3: "three"}


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    x: float
    y: float
    r: float

    def name(self, size_word: str | None = None) -> str:
        return f"{size_word} {self.colour} {self.shape}" if size_word else f"{self.colour} {self.shape}"


def _relation(a: SceneObject, b: SceneObject) -> str:
    """Where ``a`` is relative to ``b`` (image y grows downwards)."""
    dx, dy = b.x - a.x, b.y - a.y
    if abs(dx) >= abs(dy):
        return "to the left of" if dx > 0 else "to the right of"
    return "above" if dy > 0 else "below"


_INVERSE = {"to the left of": "to the right of", "to the right of": "to the left of", "above": "below", "below": "above"}


def _place(rs: SeedStream, size: int, count: int) -> list[tuple[float, float, float]]:
    """Centres and radii without overlap; the first pair's relation unambiguous."""
    for _ in range(200):
        placed: list[tuple[float, float, float]] = []
        for _k in range(count):
            big = rs.uniform() < 0.5
            r = size * (rs.uniform((), 0.15, 0.18) if big else rs.uniform((), 0.085, 0.105))
            for _try in range(30):
                x, y = rs.uniform((), r + 1, size - r - 1), rs.uniform((), r + 1, size - r - 1)
                if all((x - px) ** 2 + (y - py) ** 2 > (r + pr + 2) ** 2 for px, py, pr in placed):
                    placed.append((x, y, r))
                    break
        if len(placed) == count:
            (x0, y0, _), (x1, y1, _) = placed[0], placed[1]
            dx, dy = abs(x1 - x0), abs(y1 - y0)
            if max(dx, dy) > 1.6 * min(dx, dy):
                return placed
    raise RuntimeError("could not place the scene's objects")  # pragma: no cover - 200 tries never all fail


def _draw(img: np.ndarray, obj: SceneObject, colour: tuple[int, int, int]) -> None:
    x, y, r = obj.x, obj.y, obj.r
    if obj.shape == "circle":
        cv2.circle(img, (int(round(x)), int(round(y))), int(round(r)), colour, -1)
        return
    if obj.shape == "square":
        h = r * 0.85
        pts = [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]
    elif obj.shape == "triangle":
        pts = [(x, y - r), (x + r * 0.95, y + r * 0.8), (x - r * 0.95, y + r * 0.8)]
    else:  # diamond
        pts = [(x, y - r), (x + r, y), (x, y + r), (x - r, y)]
    cv2.fillPoly(img, [np.round(np.array(pts)).astype(np.int32)], colour)


def _captions(rs: SeedStream, objs: list[SceneObject]) -> list[str]:
    a, b = objs[0], objs[1]
    rel = _relation(a, b)

    def sz(o: SceneObject) -> str:
        return SIZE_WORDS[o.size][int(rs.integers(0, 2))]

    rest = objs[2:]
    tail = "".join(f" and a {o.name()}" for o in rest)
    all_names = [o.name(sz(o)) for o in objs]
    listing = " and a ".join([", a ".join(all_names[:-1]), all_names[-1]]) if len(objs) > 2 else " and a ".join(all_names)
    near = np.hypot(a.x - b.x, a.y - b.y) < 2.2 * (a.r + b.r)
    return [
        f"a {a.name(sz(a))} {rel} a {b.name(sz(b))}{tail}",
        f"a {a.name()} {rel} a {b.name()}",
        f"a {b.name()} {_INVERSE[rel]} a {a.name()}{tail}",
        f"there is a {listing}",
        f"{COUNT_WORDS[len(objs)]} shapes a {a.name(sz(a))} {'next to' if near else 'and'} a {b.name(sz(b))}{tail}",
    ]


def make_caption_scene(seed: int, index: int, size: int = 64) -> tuple[np.ndarray, list[str]]:
    """RGB uint8 ``(size, size, 3)`` scene ``(seed, index)`` and its five reference captions."""
    img, caps, _ = make_caption_scene_objects(seed, index, size)
    return img, caps


def make_caption_scene_objects(seed: int, index: int, size: int = 64) -> tuple[np.ndarray, list[str], list[SceneObject]]:
    """As :func:`make_caption_scene`, plus the objects drawn (for tests and reports)."""
    if size < 32:
        raise ValueError(f"caption scenes need size >= 32 to keep small shapes recognisable, got {size}")
    rs = SeedStream(seed, index)
    count = 2 if rs.uniform() < 0.6 else 3
    shapes = [SHAPES[int(i)] for i in rs.integers(0, len(SHAPES), (count,))]
    colour_names = list(COLOURS)
    picks = rs.permutation(len(colour_names))[:count]  # distinct colours: captions stay unambiguous
    spots = _place(rs, size, count)
    objs = [
        SceneObject(shapes[k], colour_names[int(picks[k])], "large" if r > size * 0.13 else "small", x, y, r)
        for k, (x, y, r) in enumerate(spots)
    ]
    base = rs.uniform((3,), 15, 80)
    grad = rs.uniform((), -20, 20) * np.linspace(-1, 1, size)[None, :, None]
    canvas = np.broadcast_to(base, (size, size, 3)) + grad
    canvas = np.clip(canvas + rs.normal((size, size, 3), 0, 5), 0, 255).astype(np.uint8)
    canvas = np.ascontiguousarray(canvas)
    for obj in objs:
        jitter = rs.uniform((3,), -18, 18)
        colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[obj.colour], jitter))
        _draw(canvas, obj, colour)
    return canvas, _captions(rs, objs), objs


def caption_scenes(seed: int, count: int, size: int = 64, offset: int = 0) -> tuple[np.ndarray, list[list[str]]]:
    """``count`` scenes from index ``offset``: uint8 ``(count, size, size, 3)`` and their captions."""
    images, captions = [], []
    for i in range(count):
        img, caps = make_caption_scene(seed, offset + i, size)
        images.append(img)
        captions.append(caps)
    return np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8), captions
