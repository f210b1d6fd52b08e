"""Load a VOC- or ATR-style segmentation folder.

Accepted layouts (first match wins)::

    ROOT/JPEGImages/*.jpg|png   + ROOT/SegmentationClass/*.png     (PASCAL VOC)
    ROOT/images/*               + ROOT/masks/*.png                 (ATR and most exports)

Masks are single-channel PNGs of class indices, or palette ("P" mode) PNGs as
VOC ships them, whose pixel values are palette *indices*; 255 means "ignore"
(VOC's object borders). Images and masks pair up by file stem. The split comes
from ``ROOT/ImageSets/Segmentation/{train,val}.txt`` when present; otherwise
every tenth pair in name order is validation. Class names come from
``ROOT/labels.txt`` (one per line, index order) when present, else the VOC
names for a VOC layout, else ``class_<i>``.

Every pair is fitted to the training size the way serving fits a request
(:func:`seedlock.core.imaging.letterbox`: zero-pad bottom/right to a square,
then resize); the mask gets the same geometry with nearest-neighbour
resampling and its padding marked 255, so padding never counts as background.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from seedlock.core.errors import UserError
from seedlock.core.imaging import ImageError, letterbox, read_image

IGNORE_INDEX = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
LAYOUTS = (("JPEGImages", "SegmentationClass"), ("images", "masks"))
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


# --------------------------------------------------------------------------- masks


def _png_header(data: bytes) -> tuple[int, int, np.ndarray | None]:
    """(bit depth, colour type, palette RGB (K, 3) or None) from PNG bytes."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ImageError("not a PNG file")
    pos, depth, ctype, plte = 8, 0, 0, None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            depth, ctype = body[8], body[9]
        elif kind == b"PLTE":
            plte = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    return depth, ctype, plte


def decode_mask(data: bytes) -> np.ndarray:
    """PNG bytes -> (H, W) uint8 class indices.

    OpenCV expands palette PNGs to colours, so for a palette PNG we decode the
    colours and map each back to its palette index (VOC palettes have distinct
    colours; the first index wins for a duplicate).
    """
    depth, ctype, plte = _png_header(data)
    buf = np.frombuffer(data, np.uint8)
    if ctype == 3 and plte is not None:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ImageError("undecodable palette PNG")
        rgb = bgr[..., ::-1].astype(np.int64)
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        pal = plte.astype(np.int64)
        pal_code = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
        # first occurrence of each colour -> index
        uniq, first = np.unique(pal_code, return_index=True)
        pos = np.searchsorted(uniq, code)
        pos = np.clip(pos, 0, len(uniq) - 1)
        if not np.all(uniq[pos] == code):
            raise ImageError("palette PNG has colours outside its palette")
        return first[pos].astype(np.uint8)
    if ctype in (0, 4) and depth == 8:  # grayscale (+ alpha): the values are the classes
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ImageError("undecodable mask PNG")
        return arr if arr.ndim == 2 else arr[..., 0]
    raise ImageError(
        f"mask PNG has colour type {ctype}, bit depth {depth}; masks must be 8-bit grayscale "
        "or palette PNGs of class indices"
    )


def read_mask(path: str | Path) -> np.ndarray:
    return decode_mask(Path(path).read_bytes())


def letterbox_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """The mask counterpart of :func:`letterbox`: pad with 255 (ignore), resize nearest."""
    h, w = mask.shape
    side = max(h, w)
    square = np.full((side, side), IGNORE_INDEX, dtype=np.uint8)
    square[:h, :w] = mask
    if side != size:
        square = cv2.resize(square, (size, size), interpolation=cv2.INTER_NEAREST)
    return square


# --------------------------------------------------------------------------- folder


def _find_layout(root: Path) -> tuple[Path, Path]:
    for img_dir, mask_dir in LAYOUTS:
        if (root / img_dir).is_dir() and (root / mask_dir).is_dir():
            return root / img_dir, root / mask_dir
    expected = " or ".join(f"{a}/ + {b}/" for a, b in LAYOUTS)
    raise UserError(f"{root} is not a segmentation folder: expected {expected} inside it")


def _read_split(root: Path, split: str) -> list[str] | None:
    path = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.is_file():
        return None
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def folder_labels(root: Path, mask_paths: list[Path], voc_layout: bool) -> list[str]:
    """Class names: ``labels.txt``, else VOC's, else ``class_<i>`` up to the largest index seen."""
    names = root / "labels.txt"
    if names.is_file():
        labels = [line.strip() for line in names.read_text().splitlines() if line.strip()]
        if labels:
            return labels
    top = -1
    for mask_path in mask_paths:
        try:
            m = read_mask(mask_path)
        except (ImageError, OSError) as exc:
            raise UserError(f"cannot read mask {mask_path.name}: {exc}") from None
        vals = m[m != IGNORE_INDEX]
        top = max(top, int(vals.max()) if vals.size else -1)
    n = max(top + 1, 2)
    if voc_layout and n <= len(VOC_CLASSES):
        return list(VOC_CLASSES)
    return ["background"] + [f"class_{i}" for i in range(1, n)]


class SegmentationFolder:
    """One split of a VOC/ATR folder as a sequence of (RGB uint8 (S, S, 3), mask uint8 (S, S))."""

    def __init__(self, root: str | Path, split: str = "train", size: int = 128) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"data folder not found: {self.root}")
        self.size = int(size)
        img_dir, mask_dir = _find_layout(self.root)
        images = {p.stem: p for p in sorted(img_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        masks = {p.stem: p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() == ".png"}
        listed = _read_split(self.root, split)
        if listed is not None:
            missing = [s for s in listed if s not in images or s not in masks]
            if missing:
                raise UserError(
                    f"{len(missing)} names in ImageSets/Segmentation/{split}.txt have no image+mask pair "
                    f"(first: {missing[0]!r})"
                )
            stems = listed
        else:
            paired = sorted(set(images) & set(masks))
            stems = [s for i, s in enumerate(paired) if (i % 10 == 9) == (split == "val")]
        if not stems:
            raise UserError(
                f"no {split} pairs in {self.root}: images in {img_dir.name}/ and PNG masks in "
                f"{mask_dir.name}/ must share file names"
            )
        self.pairs = [(images[s], masks[s]) for s in stems]
        # Scan every mask, not just this split's, so train and val agree on the class count.
        all_masks = [masks[s] for s in sorted(set(images) & set(masks))]
        self.labels = folder_labels(self.root, all_masks, img_dir.name == "JPEGImages")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        img_path, mask_path = self.pairs[i]
        try:
            image = read_image(img_path)
            mask = read_mask(mask_path)
        except (ImageError, OSError) as exc:
            raise UserError(f"cannot read {img_path.name} / {mask_path.name}: {exc}") from None
        if image.shape[:2] != mask.shape:
            raise UserError(f"{img_path.name} is {image.shape[1]}x{image.shape[0]} but its mask is {mask.shape[1]}x{mask.shape[0]}")
        valid = mask[mask != IGNORE_INDEX]
        if valid.size and int(valid.max()) >= len(self.labels):
            raise UserError(
                f"{mask_path.name} holds class {int(valid.max())} but only {len(self.labels)} classes are "
                "named (labels.txt); fix the mask or add the missing names"
            )
        boxed, _ = letterbox(image, self.size)
        return boxed, letterbox_mask(mask, self.size)
