"""Hostile images (issue 13, "input limits checked before work"): sizes read
from the header and refused over --max-image-pixels / --max-image-side before
decoding, every codec failure and channel layout answered INVALID_ARGUMENT or
correctly, a letterbox byte-identical to padding the whole square without
building it, and the server's memory per request bounded (peak RSS of a
subprocess server), with the reference request answered byte-identically
after every bad one."""

from __future__ import annotations

import io
import math
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from process_helpers import read_address, reset_peak, status_bytes
from serving_fixtures import make_segmenter_repository, sample_image, sample_png

from seedlock.clients.base import NO_RETRY
from seedlock.clients.errors import InvalidArgument
from seedlock.clients.fingerprints import FingerprintsClient
from seedlock.clients.segmentation import SegmentationClient
from seedlock.core.fingerprints import to_gray
from seedlock.core.image_headers import read_header
from seedlock.core.imaging import (
    DEFAULT_LIMITS,
    ImageError,
    ImageLimits,
    check_image,
    decode_image,
    image_memory_bytes,
    letterbox,
    letterbox_buffer_bytes,
    normalize,
    unletterbox_mask,
)
from seedlock.core.repository import load_version
from seedlock.core.segmentation import SegmentationSpec
from seedlock.core.similarity import compare_sets
from seedlock.serve.server import start_server

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32  # the segmenter's letterbox size
MiB = 1 << 20

# --------------------------------------------------------------------------- images built by hand


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_of(pixels: np.ndarray, depth: int = 8) -> bytes:
    """A PNG of 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels, 8 or
    16 bits, written by hand (OpenCV will not write grey+alpha)."""
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = pixels.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def png_bomb(width: int = 12000, height: int = 12000) -> bytes:
    """A valid 16-bit RGBA PNG of zeros, ~1 MB for 12000x12000 (1.15 GB of
    scanlines): one deflate block of a MiB of zeros, full-flushed so it repeats
    byte for byte, written once and repeated."""
    raw_len = height * (1 + width * 8)
    block = bytes(MiB)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    repeated = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    count, tail = divmod(raw_len, MiB)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    last = z.compress(bytes(tail)) + z.flush()
    adler = 1
    for _ in range(count):
        adler = zlib.adler32(block, adler)
    adler = zlib.adler32(bytes(tail), adler)
    stream = b"\x78\xda" + repeated * count + last + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def pam_of(pixels: np.ndarray, depth: int = 8) -> bytes:
    h, w, c = pixels.shape
    maxval = 65535 if depth == 16 else 255
    head = f"P7\nWIDTH {w}\nHEIGHT {h}\nDEPTH {c}\nMAXVAL {maxval}\nTUPLTYPE GRAYSCALE_ALPHA\nENDHDR\n".encode()
    return head + pixels.astype(">u2" if depth == 16 else np.uint8).tobytes()


def pillow(array: np.ndarray, fmt: str, mode: str | None = None, **options) -> bytes:
    from PIL import Image

    image = Image.fromarray(array)
    out = io.BytesIO()
    (image.convert(mode) if mode else image).save(out, fmt, **options)
    return out.getvalue()


def want_rgb(pixels: np.ndarray, depth: int) -> np.ndarray:
    """What decoding must give, computed apart from OpenCV: 16-bit keeps the
    high byte, grey is repeated, alpha dropped (PNG stores RGB order)."""
    x = (pixels >> 8) if depth == 16 else pixels
    x = x.astype(np.uint8)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.shape[2] in (1, 2):
        x = np.repeat(x[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(x[:, :, :3])


def channel_matrix() -> list[tuple[str, bytes, np.ndarray]]:
    rng = np.random.default_rng(7)
    cases = []
    for depth in (8, 16):
        for channels in (1, 2, 3, 4):
            shape = (23, 41) if channels == 1 else (23, 41, channels)
            pixels = rng.integers(0, 1 << depth, size=shape).astype(np.uint16 if depth == 16 else np.uint8)
            cases.append((f"png {channels}ch {depth}-bit", png_of(pixels, depth), want_rgb(pixels, depth)))
    for depth in (8, 16):  # OpenCV hands these back as 2 channels: INTERNAL before
        pixels = rng.integers(0, 1 << depth, size=(19, 27, 2)).astype(np.uint16 if depth == 16 else np.uint8)
        cases.append((f"pam grey+alpha {depth}-bit", pam_of(pixels, depth), want_rgb(pixels, depth)))
    grey = rng.integers(0, 256, size=(17, 29), dtype=np.uint8)
    cases.append(("tiff grey+alpha", pillow(grey, "TIFF", "LA"), want_rgb(grey, 8)))
    return cases


CHANNELS = channel_matrix()

# --------------------------------------------------------------------------- the letterbox before this change (oracle)


def old_letterbox(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    side = max(h, w)
    square = np.zeros((side, side, 3), dtype=np.uint8)
    square[:h, :w] = image
    if side != size:
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        square = cv2.resize(square, (size, size), interpolation=interp)
    return square


def old_unletterbox(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    side = max(h, w)
    full = mask if side == mask.shape[0] else cv2.resize(mask, (side, side), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(full[:h, :w])


def oracle_shapes() -> list[tuple[int, int]]:
    rng = np.random.default_rng(13)
    fixed = [(1, 1), (1, 2), (2, 1), (1, 3000), (3000, 1), (2, 2999), (37, 53), (53, 37), (32, 32), (31, 32), (32, 31),
             (33, 17), (17, 33), (64, 5), (5, 64), (96, 7), (7, 96), (128, 9), (9, 128), (255, 256), (256, 255),
             (511, 3), (3, 511), (1000, 999), (2048, 31), (31, 2048)]  # fmt: skip
    tall = [(int(rng.integers(40, 2500)), int(rng.integers(1, 40))) for _ in range(8)]
    wide = [(int(rng.integers(1, 40)), int(rng.integers(40, 2500))) for _ in range(8)]
    squareish = [tuple(int(v) for v in rng.integers(1, 700, 2)) for _ in range(14)]
    return fixed + tall + wide + squareish


@pytest.mark.parametrize("size", [1, 7, 24, 32, 33, 64, 224, 256, 512])
def test_letterbox_and_unletterbox_are_byte_identical_to_the_padded_square(size):
    """Shrinking (INTER_AREA, integer and fractional scales), growing
    (INTER_LINEAR), exact size, tiny and extreme shapes."""
    rng = np.random.default_rng(size)
    for h, w in oracle_shapes():
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        boxed, box = letterbox(image, size)
        assert boxed.dtype == np.uint8 and boxed.flags.c_contiguous
        assert np.array_equal(boxed, old_letterbox(image, size)), (h, w, size)
        mask = rng.integers(0, 5, (size, size), dtype=np.uint8)
        assert np.array_equal(unletterbox_mask(mask, box), old_unletterbox(mask, h, w)), (h, w, size)


def test_a_thin_image_is_letterboxed_without_the_square():
    """1x16384 (the largest side by default) to 32: the square would be 805 MB."""
    image = sample_image(1, 16384)
    tracemalloc.start()
    try:
        boxed, box = letterbox(image, SIZE)
        mask = unletterbox_mask(np.ones((SIZE, SIZE), np.uint8), box)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    bound = letterbox_buffer_bytes(1, 16384, SIZE) + 3 * SIZE * SIZE + 2 * 16384 + MiB
    assert peak <= bound < 30 * MiB, (peak, bound)
    assert mask.shape == (1, 16384) and boxed.shape == (SIZE, SIZE, 3)
    assert not boxed.any()  # one row in each 512x512 cell averages to under half a level, as on the square


# --------------------------------------------------------------------------- headers and decoding


def test_every_channel_count_and_depth_decodes_to_rgb():
    for label, data, want in CHANNELS:
        got = decode_image(data)
        assert got.dtype == np.uint8 and got.shape == want.shape, label
        assert np.array_equal(got, want), label


def _formats() -> dict[str, bytes]:
    rgb = sample_image(21, 30, seed=4)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    out = {ext: cv2.imencode(ext, bgr)[1].tobytes() for ext in (".png", ".jpg", ".webp", ".bmp", ".tiff", ".ppm", ".pam", ".gif")}
    out[".pgm"] = cv2.imencode(".pgm", rgb[..., 0])[1].tobytes()
    out[".pbm"] = cv2.imencode(".pbm", rgb[..., 0])[1].tobytes()
    out["progressive jpeg"] = pillow(rgb, "JPEG", progressive=True)
    out["cmyk jpeg"] = pillow(rgb, "JPEG", "CMYK")
    out["lossless webp"] = pillow(rgb, "WEBP", lossless=True)
    out["lzw tiff"] = pillow(rgb, "TIFF", compression="tiff_lzw")
    out["palette bmp"] = pillow(rgb, "BMP", "P")
    return out


def test_headers_give_the_size_the_decoder_produces():
    for label, data in _formats().items():
        header = read_header(data)
        assert decode_image(data).shape == (header.height, header.width, 3), label
        assert (header.width, header.height) == (30, 21), label


REFUSED = {
    "garbage": (b"not an image", "could not decode 12 bytes as an image: not PNG, JPEG"),
    "png signature only": (b"\x89PNG\r\n\x1a\n", "PNG header is truncated"),
    "png without IHDR first": (b"\x89PNG\r\n\x1a\n" + _chunk(b"tEXt", b"a\0b" * 5), "IHDR"),
    "jpeg cut in its header": (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG header is truncated"),
    "jpeg scan before a frame": (b"\xff\xd8\xff\xda\x00\x08" + bytes(8), "without a frame header"),
    "jpeg 12-bit": (b"\xff\xd8\xff\xc0\x00\x11\x0c\x00\x10\x00\x10\x03" + bytes(9), "12-bit samples"),
    "jpeg height by DNL": (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x10\x03" + bytes(9), "DNL"),
    "bmp odd header": (b"BM" + bytes(12) + struct.pack("<I", 20) + bytes(20), "20-byte header"),
    "gif of 0x0": (b"GIF89a" + bytes(8), "GIF of 0x0"),
    "webp unknown chunk": (b"RIFF\0\0\0\0WEBPALPH" + bytes(16), "first chunk"),
    "animated webp": (b"RIFF\0\0\0\0WEBPVP8X" + struct.pack("<I", 10) + b"\x02" + bytes(9), "animated WebP"),
    "animated png": (png_of(np.zeros((2, 2), np.uint8))[:33] + _chunk(b"acTL", struct.pack(">II", 2, 0)), "animated PNG"),
    "bigtiff": (b"II+\x00" + bytes(12), "BigTIFF"),
    "float tiff": (pillow(np.zeros((4, 4), np.float32), "TIFF"), "floating-point"),
    "tiff strips of a billion rows": (None, "tiles or strips"),
    "pnm truncated": (b"P6\n12", "PNM header is truncated"),
    "pam depth 5": (b"P7\nWIDTH 2\nHEIGHT 2\nDEPTH 5\nMAXVAL 255\nENDHDR\n" + bytes(20), "depth 5"),
    "pfm": (b"PF\n2 2\n-1\n" + bytes(48), "PFM"),
    "jpeg 2000": (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(8), "JPEG 2000"),
    "truncated png": (sample_png(40, 60)[:200], "could not decode 200 bytes as PNG"),
    "corrupt png data": (sample_png(40, 60)[:60] + bytes(400) + sample_png(40, 60)[460:], "could not decode"),
    "truncated jpeg": (cv2.imencode(".jpg", sample_image(64, 64))[1].tobytes()[:400], "could not decode 400 bytes as JPEG"),
    "1x30000 over the side": (png_of(np.zeros((30000, 1), np.uint8)), "--max-image-side"),
    "100000x1 over the side": (png_of(np.zeros((1, 100000), np.uint8)), "image is 100000x1; its sides may be at most 16384"),
    "12000x12000 bomb": (None, "image is 12000x12000 = 144000000 pixels; the limit is 16777216"),
}


def _tall_strip_tiff() -> bytes:
    """A 64x64 TIFF whose RowsPerStrip says 2**24: OpenCV would allocate a
    64 x 16.7M strip buffer (4 GB as RGBA) to decode 4096 pixels."""
    data = bytearray(pillow(np.zeros((64, 64), np.uint8), "TIFF"))
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for i in range(count):
        at = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, at)[0] == 278:
            struct.pack_into("<HHII", data, at, 278, 4, 1, 1 << 24)
    return bytes(data)


BOMB = png_bomb()
REFUSED["12000x12000 bomb"] = (BOMB, REFUSED["12000x12000 bomb"][1])
REFUSED["tiff strips of a billion rows"] = (_tall_strip_tiff(), REFUSED["tiff strips of a billion rows"][1])


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_bytes_are_an_image_error_naming_the_fault(case):
    data, message = REFUSED[case]
    with pytest.raises(ImageError) as info:
        decode_image(data)
    assert message in str(info.value), str(info.value)


def test_limits_are_checked_from_the_header_and_name_their_flags():
    assert len(BOMB) < 1_200_000
    header = check_image(BOMB, ImageLimits(max_pixels=12000 * 12000, max_side=12000))
    assert (header.width, header.height, header.channels, header.bits) == (12000, 12000, 4, 16)
    data = png_of(np.zeros((30, 40), np.uint8))
    with pytest.raises(ImageError, match=r"1200 pixels; the limit is 1199 \(seedlock serve --max-image-pixels\)"):
        check_image(data, ImageLimits(max_pixels=1199))
    with pytest.raises(ImageError, match=r"at most 39 pixels \(seedlock serve --max-image-side\)"):
        decode_image(data, ImageLimits(max_side=39))
    assert decode_image(data, ImageLimits(max_pixels=1200, max_side=40)).shape == (30, 40, 3)
    with pytest.raises(ValueError, match="at least 1 pixel"):
        ImageLimits(max_pixels=0)


def test_opencv_decode_cap_is_set_before_cv2_is_imported():
    """The backstop behind the header check: a PNG over 2**28 pixels that the
    limits let through is refused by OpenCV itself, as INVALID_ARGUMENT's ImageError."""
    code = (
        "import os, struct, zlib\n"
        "from seedlock.core.imaging import ImageError, ImageLimits, decode_image\n"
        "print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'])\n"
        "ihdr = struct.pack('>IIBBBBB', 16385, 16385, 8, 0, 0, 0, 0)\n"
        "chunk = lambda k, b: struct.pack('>I', len(b)) + k + b + struct.pack('>I', zlib.crc32(k + b))\n"
        "png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\\0' * 99)) + chunk(b'IEND', b'')\n"
        "try:\n"
        "    decode_image(png, ImageLimits(1 << 40, 1 << 20))\n"
        "except ImageError as exc:\n"
        "    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    cap, message = out.stdout.splitlines()
    assert cap == str(1 << 28)
    assert "over OpenCV's decoding cap of 268435456 pixels (OPENCV_IO_MAX_IMAGE_PIXELS" in message


def test_to_gray_in_bands_equals_the_whole_image_formula():
    rng = np.random.default_rng(3)
    for shape in [(1, 1, 3), (700, 600, 3), (3, 300000, 4), (1100, 1, 3)]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        rgb = img[:, :, :3].astype(np.uint32)
        want = ((299 * rgb[..., 0] + 587 * rgb[..., 1] + 114 * rgb[..., 2] + 500) // 1000).astype(np.uint8)
        assert np.array_equal(to_gray(img), want), shape


# --------------------------------------------------------------------------- through a real server


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_segmenter_repository(tmp_path_factory.mktemp("hostile"), name="segmenter", size=SIZE)


@pytest.fixture(scope="module")
def server(repo):
    running = start_server(repo, threads=1, workers=2)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def client(server):
    with SegmentationClient(server.address, timeout=60, retry=NO_RETRY) as c:
        yield c


def expected_mask(repo: Path, rgb: np.ndarray) -> np.ndarray:
    """The pipeline by hand on decoded pixels: core functions + plain ONNX Runtime."""
    mv = load_version(repo, "segmenter")
    spec = SegmentationSpec.from_manifest(mv.manifest)
    session = ort.InferenceSession(str(mv.path()), providers=["CPUExecutionProvider"])
    boxed, box = letterbox(rgb, spec.size)
    logits = session.run([spec.output_name], {spec.input_name: normalize(boxed, list(spec.mean), list(spec.std))})[0]
    return unletterbox_mask(np.argmax(logits[0], axis=0).astype(np.uint8), box)


REFERENCE = sample_png(37, 53, seed=1)


def _stable(response) -> bytes:
    copy = type(response)()
    copy.CopyFrom(response)
    copy.ClearField("timing")
    return copy.SerializeToString(deterministic=True)


@pytest.mark.parametrize("label", [c[0] for c in CHANNELS])
def test_every_channel_count_and_depth_is_served_correctly(repo, client, label):
    _, data, rgb = next(c for c in CHANNELS if c[0] == label)
    result = client.segment(data)
    assert np.array_equal(result.mask, expected_mask(repo, rgb)), label


def test_bad_images_are_invalid_argument_and_the_server_answers_the_reference_unchanged(client):
    reference = _stable(client.segment_raw(REFERENCE))
    for case, (data, message) in REFUSED.items():
        with pytest.raises(InvalidArgument) as info:
            client.segment(data)
        assert message in info.value.message, (case, info.value.message)
        assert _stable(client.segment_raw(REFERENCE)) == reference, case


def test_compare_checks_every_header_before_decoding(server):
    """Fingerprints.Compare takes images too (no model needed): a bomb in set_b
    is refused by its header; grey+alpha 16-bit is compared as grey."""
    grey = np.random.default_rng(5).integers(0, 256, (3, 24, 24), dtype=np.uint8)
    grey_alpha = [png_of(np.stack([g.astype(np.uint16) * 257, np.full_like(g, 65535, np.uint16)], axis=2), 16) for g in grey]
    with FingerprintsClient(server.address, timeout=60, retry=NO_RETRY) as c:
        reference = c.compare(grey, grey).similarity
        assert c.compare(grey_alpha, grey).similarity == compare_sets(grey, grey) == reference
        with pytest.raises(InvalidArgument, match=r"set_b image 1: image is 12000x12000 = 144000000 pixels"):
            c.compare(grey, [grey_alpha[0], BOMB])
        with pytest.raises(InvalidArgument, match=r"set_b image 0: could not decode 12 bytes as an image"):
            c.compare(grey, [b"not an image"])
        assert c.compare(grey, grey).similarity == reference


# --------------------------------------------------------------------------- memory: a subprocess server's peak RSS


OPENCV_CAP = 16_500_000  # the subprocess server's OPENCV_IO_MAX_IMAGE_PIXELS: just below its --max-image-pixels


def test_memory_per_request_is_bounded_by_the_limits(repo, tmp_path):
    """Each probe's growth of the server's peak RSS against the bound the
    limits give (see letterbox_buffer_bytes); before this change the 1x30000
    PNG cost +2.6 GB and the bomb +2.2 GB."""
    side = 30000
    env = {**os.environ, "OPENCV_IO_MAX_IMAGE_PIXELS": str(OPENCV_CAP)}
    errors = (tmp_path / "stderr").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "seedlock", "serve", "--repository", str(repo), "--port", "0", "--threads", "1",
         "--workers", "2", "--max-image-side", str(side)],
        stdout=subprocess.PIPE, stderr=errors, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    wide, tall = sample_image(1, side, seed=2), sample_image(side, 1, seed=3)
    over_cap = png_of(np.zeros((4050, 4096), np.uint8))  # 16588800 pixels: under the limit, over the cap
    # A refused image costs its request bytes (1.1 MB at most here) a few times
    # over; 32 MiB leaves room for the allocator's own growth.
    small = 32 * MiB
    thin_bound = letterbox_buffer_bytes(1, side, SIZE) + small  # the padded margin
    probes = [  # (label (width x height), bytes, expected message or None: an answer, bound on peak growth)
        ("bomb 12000x12000 16-bit RGBA", BOMB, "the limit is 16777216", small),
        ("100000x1 PNG", png_of(np.zeros((1, 100000), np.uint8)), "its sides may be at most 30000", small),
        ("1x100000 PNG", png_of(np.zeros((100000, 1), np.uint8)), "its sides may be at most 30000", small),
        ("over OpenCV's cap", over_cap, "over OpenCV's decoding cap of 16500000", small),
        ("garbage", os.urandom(4096), "could not decode 4096 bytes", small),
        ("30000x1 PNG", png_of(wide), wide, thin_bound),
        ("1x30000 PNG", png_of(tall), tall, thin_bound),
        # the largest image the limits let through, at the most bytes per pixel
        ("4096x4000 16-bit RGBA", png_bomb(4096, 4000), np.zeros((4000, 4096, 3), np.uint8),
         image_memory_bytes(ImageLimits(DEFAULT_LIMITS.max_pixels, side), SIZE) + small),
    ]
    try:
        address = read_address(proc, tmp_path / "stderr")
        with SegmentationClient(address, timeout=120, retry=NO_RETRY) as c:
            reference = _stable(c.segment_raw(REFERENCE))
            c.segment(sample_png(300, 200))  # warm the decoding threads' allocators
            growth = {}
            for label, data, message, _ in probes:
                before = reset_peak(proc.pid)
                if isinstance(message, np.ndarray):  # an answer: the mask of these pixels
                    result = c.segment(data)
                    assert result.mask.shape == message.shape[:2]
                    assert np.array_equal(result.mask, expected_mask(repo, message))
                else:
                    with pytest.raises(InvalidArgument) as info:
                        c.segment(data)
                    assert message in info.value.message, (label, info.value.message)
                growth[label] = status_bytes(proc.pid, "VmHWM") - before
                assert _stable(c.segment_raw(REFERENCE)) == reference, label
            print({k: f"{v / MiB:.1f} MiB" for k, v in growth.items()})
            for label, _, _, bound in probes:
                assert growth[label] < bound, (label, growth[label] / MiB, bound / MiB)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        errors.close()
    assert "Traceback" not in (tmp_path / "stderr").read_text()


def test_default_limits_are_what_the_flags_document():
    assert DEFAULT_LIMITS == ImageLimits(16_777_216, 16_384)
    assert math.isqrt(DEFAULT_LIMITS.max_pixels) == 4096


def test_running_out_of_memory_is_resource_exhausted_and_the_server_carries_on(repo, tmp_path):
    """A request the host has no memory left for (here: the server's address
    space capped just above its size after loading, then the largest image the
    limits allow) is RESOURCE_EXHAUSTED, not INTERNAL; once memory is back the
    same server answers the reference byte-identically and the image itself."""
    import resource

    from seedlock.clients.errors import ResourceExhausted

    errors = (tmp_path / "stderr").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "seedlock", "serve", "--repository", str(repo), "--port", "0", "--threads", "1",
         "--workers", "1"],
        stdout=subprocess.PIPE, stderr=errors, text=True, cwd=ROOT,
    )  # fmt: skip
    largest = png_bomb(4096, 4000)  # 16-bit RGBA: ~250 MiB to decode
    try:
        address = read_address(proc, tmp_path / "stderr")
        with SegmentationClient(address, timeout=120, retry=NO_RETRY) as c:
            reference = _stable(c.segment_raw(REFERENCE))
            size = status_bytes(proc.pid, "VmSize")
            _, hard = resource.prlimit(proc.pid, resource.RLIMIT_AS)
            resource.prlimit(proc.pid, resource.RLIMIT_AS, (size + 64 * MiB, hard))
            try:
                with pytest.raises(ResourceExhausted, match="ran out of memory"):
                    c.segment(largest)
            finally:
                resource.prlimit(proc.pid, resource.RLIMIT_AS, (hard, hard))
            assert _stable(c.segment_raw(REFERENCE)) == reference
            assert c.segment(largest).mask.shape == (4000, 4096)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        errors.close()
    assert "Traceback" not in (tmp_path / "stderr").read_text()
