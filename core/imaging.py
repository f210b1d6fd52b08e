"""Image codecs and the segmentation pre/post-processing shared by training,
export checks and the server.

Images are ``uint8`` arrays in RGB order, shape ``(H, W, 3)``; class masks are
``uint8`` arrays ``(H, W)`` of class indices. The server applies exactly the
functions used at export time, with parameters read from the manifest.

Decoding is bounded before it starts: :func:`decode_image` reads the size from
the header (:mod:`seedlock.core.image_headers`) and refuses an image over its
:class:`ImageLimits` before OpenCV allocates anything; OpenCV's own pixel cap
is a backstop behind it. Letterboxing never builds the padded square of the
long side, so a 1x16384 image costs what its pixels cost.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

from seedlock.core.image_headers import ACCEPTED_FORMATS, ImageError, ImageHeader, read_header  # noqa: F401 - re-exported

# OpenCV reads its decode cap from the environment once, when cv2 is imported
# (the server imports it first here). The header check refuses far smaller
# images; this catches any header OpenCV would read differently. An operator's
# own setting wins.
OPENCV_CAP_VARIABLE = "OPENCV_IO_MAX_IMAGE_PIXELS"
OPENCV_PIXEL_CAP = 1 << 28  # 16384 x 16384
if "cv2" not in sys.modules:
    os.environ.setdefault(OPENCV_CAP_VARIABLE, str(OPENCV_PIXEL_CAP))

import cv2  # noqa: E402 - after the cap is set
import numpy as np  # noqa: E402

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

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.max_side < 1:
            raise ValueError(f"image limits must be at least 1 pixel, got {self.max_pixels} pixels, side {self.max_side}")

    def check(self, header: ImageHeader) -> None:
        """Raise :class:`ImageError` naming the limit and its flag when the image is over it."""
        w, h = header.width, header.height
        if max(w, h) > self.max_side:
            raise ImageError(
                f"image is {w}x{h}; its sides may be at most {self.max_side} pixels "
                "(seedlock serve --max-image-side): send a smaller image"
            )
        if header.pixels > self.max_pixels:
            raise ImageError(
                f"image is {w}x{h} = {header.pixels} pixels; the limit is {self.max_pixels} "
                "(seedlock serve --max-image-pixels): send a smaller image"
            )
        if header.buffer_pixels > self.max_pixels:
            raise ImageError(
                f"this {header.format} is stored in tiles or strips of {header.buffer_pixels} pixels, over the "
                f"limit of {self.max_pixels} (seedlock serve --max-image-pixels): save it with smaller strips"
            )


DEFAULT_LIMITS = ImageLimits()


def check_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> ImageHeader:
    """The image's header, checked against ``limits`` without decoding: what a
    request handler runs before queueing work. Raises :class:`ImageError`."""
    if not data:
        raise ImageError("empty image: no bytes were sent")
    header = read_header(data)
    limits.check(header)
    return header


def decode_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode PNG/JPEG/WebP/BMP/GIF/TIFF/PNM bytes to RGB uint8 ``(H, W, 3)``.

    The header is checked against ``limits`` first. Grey, grey+alpha, colour
    and colour+alpha in 8 or 16 bits all come out as RGB (alpha dropped, 16-bit
    samples keep their high byte). Every failure is an :class:`ImageError`,
    except running out of memory (``MemoryError``, which the server answers
    RESOURCE_EXHAUSTED: the bytes were fine, the host was full)."""
    header = check_image(data, limits)
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ImageError(f"could not decode {len(data)} bytes as {header.format}: the data is truncated or corrupt")
        if img.shape[:2] != (header.height, header.width):  # the decoder read another size: trust neither
            raise ImageError(
                f"could not decode {len(data)} bytes as {header.format}: its header says "
                f"{header.width}x{header.height} but its data is {img.shape[1]}x{img.shape[0]}"
            )
        return to_rgb(img)
    except cv2.error as exc:
        if getattr(exc, "code", None) == cv2.Error.StsNoMem:
            # The host is out of memory, the bytes may be fine: the server answers RESOURCE_EXHAUSTED.
            raise MemoryError(f"decoding a {header.width}x{header.height} {header.format}") from None
        raise _decode_error(data, header, exc) from None


def _decode_error(data: bytes, header: ImageHeader, exc: cv2.error) -> ImageError:
    text = str(exc)
    if "CV_IO_MAX_IMAGE" in text:
        cap = os.environ.get(OPENCV_CAP_VARIABLE, "")
        return ImageError(
            f"image is {header.width}x{header.height}: over OpenCV's decoding cap of {cap or 'its default'} "
            f"pixels ({OPENCV_CAP_VARIABLE}, read when the server starts): send a smaller image"
        )
    # OpenCV's messages carry a source path and an assertion: keep the reason only, short.
    reason = (getattr(exc, "err", "") or text).strip().splitlines()[0][:120]
    return ImageError(f"could not decode {len(data)} bytes as {header.format}: {reason}")


def to_rgb(img: np.ndarray) -> np.ndarray:
    """A decoded image (OpenCV's BGR order: 1 to 4 channels, 8 or 16 bits) as RGB
    uint8; alpha is dropped, 16-bit samples keep their high byte."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or not 1 <= img.shape[2] <= 4:
        raise ImageError(f"images of shape {img.shape} are not supported; send 1 to 4 channels")
    if img.dtype == np.uint16:
        return _high_bytes_rgb(img)
    if img.dtype != np.uint8:
        raise ImageError(f"images with {img.dtype} samples are not supported; send 8- or 16-bit images")
    channels = img.shape[2]
    if channels <= 2:  # grey, grey + alpha
        return cv2.cvtColor(np.ascontiguousarray(img[:, :, 0]), cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if channels == 4 else cv2.COLOR_BGR2RGB)


_HIGH_BYTE = 1 if sys.byteorder == "little" else 0


def _high_bytes_rgb(img: np.ndarray) -> np.ndarray:
    """16-bit BGR(A) or grey(+alpha) -> RGB uint8 of the high bytes, written
    straight into the output: no 8-bit copy of every channel in between."""
    high = img.view(np.uint8)[:, :, _HIGH_BYTE::2]
    out = np.empty((*img.shape[:2], 3), dtype=np.uint8)
    for dst, src in enumerate((2, 1, 0) if img.shape[2] >= 3 else (0, 0, 0)):
        out[:, :, dst] = high[:, :, src]
    return out


def encode_png(image: np.ndarray) -> bytes:
    """Encode an RGB (H, W, 3) or single-channel (H, W) uint8 array as PNG bytes."""
    if image.dtype != np.uint8:
        raise ImageError(f"encode_png needs uint8, got {image.dtype}")
    arr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buf = cv2.imencode(".png", arr, _PNG_PARAMS)
    if not ok:
        raise ImageError("PNG encoding failed")
    return buf.tobytes()


def read_image(path, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    with open(path, "rb") as f:
        return decode_image(f.read(), limits)


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


def _letterbox_plan(short: int, side: int, size: int) -> tuple[int, int]:
    """For an image of sides ``short`` < ``side`` letterboxed to ``size``: how many
    output lines touch the image (the rest are zero), and how many source lines
    (image, then zeros) cv2.resize needs to compute those lines exactly as it
    would on the whole padded square."""
    fx = size / side
    if side > size:  # INTER_AREA: output line d averages source [d / fx, (d + 1) / fx)
        lines = min(size, math.floor(short * fx) + 1)
        return lines, min(side, math.ceil(lines / fx) + 3)
    # INTER_LINEAR: output line d blends source lines floor((d + 0.5) / fx - 0.5) and the next
    lines = min(size, math.ceil((short + 1) * fx) + 2)
    return lines, min(side, math.ceil(lines / fx) + 4)


def letterbox_buffer_bytes(height: int, width: int, size: int) -> int:
    """Bytes of the zero-padded buffer :func:`letterbox` builds for an image of
    this size: ``3 * side * extent`` with ``extent <= min(side, short + side / size + 9)``
    (0 when nothing is padded). The memory bound's letterbox term."""
    side, short = max(height, width), min(height, width)
    if side == size or short == side:
        return 0
    return 3 * side * _letterbox_plan(short, side, size)[1]


# Peak bytes per pixel while decoding, measured for every accepted format at
# 4096 x 4096: the decoder's image (at most 4 channels of 2 bytes) plus the
# copy OpenCV's Python binding returns of it. The working buffers of
# progressive JPEG (coefficients), GIF (canvas) and TIFF (a tile or strip, its
# pixels held to the same limit) are freed before that copy and stay under it.
DECODE_BYTES_PER_PIXEL = 16


def image_memory_bytes(limits: ImageLimits, size: int) -> int:
    """An upper bound on the bytes one image takes to decode and letterbox to
    ``size`` (beyond the request's own bytes and the model's tensors):
    ``16 * max_pixels`` while decoding, plus the letterbox's zero margin
    ``3 * max_side * (max_side / size + 9)``. The RGB image and the rest of the
    letterbox's buffer (3 bytes a pixel each) reuse what decoding freed."""
    side = limits.max_side
    return DECODE_BYTES_PER_PIXEL * limits.max_pixels + 3 * side * (math.ceil(side / size) + 9)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """RGB uint8 ``(H, W, 3)`` -> ``(size, size, 3)``: zero-pad bottom/right to a
    square of the long side, then resize (INTER_AREA shrinking, INTER_LINEAR
    growing), without building that square.

    Byte-identical to padding the whole square (served answers are seed-locked):
    cv2.resize computes each output pixel from the scale and its own source
    window (``dsize=None`` keeps ``fx = size / side`` exactly, as
    ``dsize=(size, size)`` on the square did), so the output lines touching the
    image are computed from the image plus a zero margin that covers their
    windows, and every other line is zero, as it was. Memory:
    :func:`letterbox_buffer_bytes`, not ``3 * side**2``."""
    h, w = image.shape[:2]
    side = max(h, w)
    box = Letterbox(h, w, size)
    if side == size:
        out = np.zeros((size, size, 3), dtype=np.uint8)
        out[:h, :w] = image
        return out, box
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    if h == w:  # nothing to pad
        return cv2.resize(image, (size, size), interpolation=interp), box
    fx = size / side
    lines, extent = _letterbox_plan(min(h, w), side, size)
    out = np.zeros((size, size, 3), dtype=np.uint8)
    if h < w:
        padded = np.zeros((extent, w, 3), dtype=np.uint8)
        padded[:h] = image
        out[:lines] = cv2.resize(padded, None, fx=fx, fy=fx, interpolation=interp)[:lines]
    else:
        padded = np.zeros((h, extent, 3), dtype=np.uint8)
        padded[:, :w] = image
        out[:, :lines] = cv2.resize(padded, None, fx=fx, fy=fx, interpolation=interp)[:, :lines]
    return out, box


def unletterbox_mask(mask: np.ndarray, box: Letterbox) -> np.ndarray:
    """Map a (size, size) class mask back to the original (H, W), nearest neighbour.

    The same pixels as resizing the mask to the padded square (INTER_NEAREST)
    and cropping, without building the square: OpenCV's nearest-neighbour map
    from output to source index, taken by resizing the row ``0..size-1`` to
    ``side``, picks the rows and columns."""
    side = box.side
    if mask.shape != (box.size, box.size):
        raise ValueError(f"mask shape {mask.shape} does not match the letterbox size {box.size}")
    if side == box.size:
        return np.ascontiguousarray(mask[: box.height, : box.width])
    index = np.arange(box.size, dtype=np.int32)[None, :]
    source = cv2.resize(index, (side, 1), interpolation=cv2.INTER_NEAREST)[0]
    return mask[np.ix_(source[: box.height], source[: box.width])]


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
