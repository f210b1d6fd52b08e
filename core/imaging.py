"""Image codecs and the segmentation pre/post-processing shared by training,
export checks and the server.

Images are ``uint8`` arrays in RGB order, shape ``(H, W, 3)``; class masks are
``uint8`` arrays ``(H, W)`` of class indices. The server applies exactly the
functions used at export time, with parameters read from the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Fixed PNG settings so the same mask always encodes to the same bytes. Level 1:
# masks compress well anyway, and level 6 cost ~10 ms per 256x256 response.
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
MAX_PIXELS = 16_777_216  # 4096 x 4096
MAX_SIDE = 16_384


@dataclass(frozen=True)
class ImageLimits:
    """The largest image a request may send (``seedlock serve --max-image-pixels
    / --max-image-side``), checked from the header before decoding."""

    max_pixels: int = MAX_PIXELS
    max_side: int = MAX_SIDE


DEFAULT_LIMITS = ImageLimits()


class ImageError(ValueError):
    """The bytes are not an image we can use."""


def decode_image(data: bytes) -> np.ndarray:
    """Decode PNG/JPEG/BMP/... bytes to RGB uint8 (H, W, 3). Raises :class:`ImageError`."""
    if not data:
        raise ImageError("empty image: no bytes were sent")
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError(f"could not decode {len(data)} bytes as an image (send PNG or JPEG)")
    if img.size == 0 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageError("empty image: zero width or height")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ImageError(f"image is {img.shape[1]}x{img.shape[0]}; the limit is {MAX_PIXELS} pixels")
    if img.dtype != np.uint8:  # 16-bit PNGs: keep the high byte
        img = (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def encode_png(image: np.ndarray) -> bytes:
    """Encode an RGB (H, W, 3) or single-channel (H, W) uint8 array as PNG bytes."""
    if image.dtype != np.uint8:
        raise ImageError(f"encode_png needs uint8, got {image.dtype}")
    arr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buf = cv2.imencode(".png", arr, _PNG_PARAMS)
    if not ok:
        raise ImageError("PNG encoding failed")
    return buf.tobytes()


def read_image(path) -> np.ndarray:
    with open(path, "rb") as f:
        return decode_image(f.read())


def write_png(path, image: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(encode_png(image))


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the model's square input, so the mask can
    be mapped back: zero-pad bottom/right to a square of the long side (the
    thesis's zero padding), then resize to ``size``."""

    height: int
    width: int
    size: int

    @property
    def side(self) -> int:
        return max(self.height, self.width)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    h, w = image.shape[:2]
    side = max(h, w)
    square = np.zeros((side, side, 3), dtype=np.uint8)
    square[:h, :w] = image
    if side != size:
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        square = cv2.resize(square, (size, size), interpolation=interp)
    return square, Letterbox(h, w, size)


def unletterbox_mask(mask: np.ndarray, box: Letterbox) -> np.ndarray:
    """Map a (size, size) class mask back to the original (H, W), nearest neighbour."""
    side = box.side
    if mask.shape != (box.size, box.size):
        raise ValueError(f"mask shape {mask.shape} does not match the letterbox size {box.size}")
    full = mask if side == box.size else cv2.resize(mask, (side, side), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(full[: box.height, : box.width])


def normalize(images: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """uint8 RGB (N, H, W, 3) or (H, W, 3) -> float32 NCHW, ``(x/255 - mean) / std``."""
    x = images.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def palette(num_classes: int) -> np.ndarray:
    """A fixed, distinguishable RGB colour per class (class 0 black)."""
    colours = np.zeros((max(num_classes, 1), 3), dtype=np.uint8)
    for c in range(1, num_classes):
        # golden-angle hues, full value
        hue = int((c * 137.508) % 180)
        hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
        colours[c] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return colours


def colorize(mask: np.ndarray, num_classes: int) -> np.ndarray:
    return palette(max(num_classes, int(mask.max()) + 1))[mask]


def overlay(image: np.ndarray, mask: np.ndarray, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured mask over the image; background (class 0) stays as is."""
    colour = colorize(mask, num_classes).astype(np.float32)
    out = image.astype(np.float32)
    fg = mask > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colour[fg]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
