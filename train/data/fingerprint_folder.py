"""Users' own fingerprint images: a folder with one subfolder per quality.

    ROOT/
      Q1/  *.png | *.jpg | *.bmp | *.tif ...
      Q2/  ...
      Q3/  ...
      Q5/  ...

Subfolder names are the quality labels (any names work; the thesis's are
``Q1 Q2 Q3 Q5``). Images are read as grey, padded to a square with the
background grey of their border (so the whole print is kept, never cropped),
and resized to ``size x size`` with area averaging. :func:`load_image_set`
reads a plain folder (any depth) for the similarity checker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from seedlock.core.errors import UserError
from seedlock.core.fingerprints import to_gray
from seedlock.core.imaging import ImageError, read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")


@dataclass
class FingerprintFolder:
    """Images per quality, uint8 ``(N, size, size)``, and the files they came from."""

    root: Path
    size: int
    images: dict[str, np.ndarray]
    files: dict[str, list[Path]]

    @property
    def qualities(self) -> list[str]:
        return list(self.images)

    def __len__(self) -> int:
        return sum(len(v) for v in self.images.values())


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def square_resize(gray: np.ndarray, size: int) -> np.ndarray:
    """Pad a grey image to a square (centred, border colour = median of its edge pixels), then resize."""
    h, w = gray.shape
    side = max(h, w)
    if h != w:
        edge = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        fill = int(np.median(edge))
        square = np.full((side, side), fill, dtype=np.uint8)
        y, x = (side - h) // 2, (side - w) // 2
        square[y : y + h, x : x + w] = gray
        gray = square
    if side != size:
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (size, size), interpolation=interp)
    return gray


def read_gray(path: Path, size: int | None) -> np.ndarray:
    """One image file -> uint8 grey, square-resized to ``size`` when given. Raises UserError naming the file."""
    try:
        gray = to_gray(read_image(path))
    except (ImageError, OSError, ValueError) as exc:
        raise UserError(f"{path}: {exc}") from None
    return square_resize(gray, size) if size else gray


def load_quality_folder(root: str | Path, size: int = 64, qualities: list[str] | None = None, limit: int | None = None) -> FingerprintFolder:
    """Read ``root/<quality>/*`` (sorted file order; at most ``limit`` images per quality)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"fingerprint folder not found: {root}")
    found = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".") and _image_files(p, True)}
    if not found:
        raise UserError(f"{root} has no quality subfolders with images (expected {root}/Q1/*.png, {root}/Q2/*.png, ...)")
    wanted = list(qualities) if qualities else list(found)
    missing = [q for q in wanted if q not in found]
    if missing:
        raise UserError(f"{root} has no images for quality {', '.join(missing)} (found: {', '.join(found)})")
    images: dict[str, np.ndarray] = {}
    files: dict[str, list[Path]] = {}
    for q in wanted:
        paths = _image_files(found[q], True)[:limit]
        files[q] = paths
        images[q] = np.stack([read_gray(p, size) for p in paths])
    return FingerprintFolder(root, size, images, files)


def load_image_set(path: str | Path, size: int | None = None, limit: int | None = None) -> tuple[np.ndarray, list[Path]]:
    """Every image under ``path`` (any depth, sorted), grey uint8 ``(N, S, S)``.

    Without ``size`` the images must already share one size; with it they are
    square-resized to ``size``."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"image folder not found: {path}")
    paths = _image_files(path, True)[:limit]
    if not paths:
        raise UserError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    grays = [read_gray(p, size) for p in paths]
    shapes = sorted({g.shape for g in grays})
    if len(shapes) > 1:
        raise UserError(f"images in {path} have different sizes ({', '.join(f'{w}x{h}' for h, w in shapes[:4])}); pass --size to resize them")
    return np.stack(grays), paths
