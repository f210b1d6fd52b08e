"""Hypothesis strategies for the fuzz suite (tests/test_fuzz.py): hostile
images, music primers, KServe v2 requests and task parameters.

Inputs are small on purpose: the suite fuzzes parsers and decoders, not the
memory limits (those have their own tests). Files are built by hand where a
header field must be editable (PNG chunks, MIDI header, zip members), and
mutated afterwards with bit flips, truncation, splices and header edits.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib

import cv2
import numpy as np
from hypothesis import strategies as st

from seedlock.core.dtypes import TABLE, TYPED_FIELD, V2_TO_NUMPY
from seedlock.protos.inference import grpc_service_pb2 as v2

# -- numbers ----------------------------------------------------------------------
INT32 = (-(2**31), 2**31 - 1)
UINT32 = (0, 2**32 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT64 = (0, 2**64 - 1)


def ints(lo: int, hi: int, *typical: int) -> st.SearchStrategy[int]:
    """Any integer of a proto range, with its edges and a few typical values
    drawn as often as the rest (hypothesis alone rarely hits 1 or 3)."""
    edges = {lo, hi, lo + 1, hi - 1, 0, 1, -1, 2, *typical}
    return st.one_of(st.sampled_from(sorted(v for v in edges if lo <= v <= hi)), st.integers(lo, hi))


# Doubles a user (or an attacker) might send: NaN, infinities, the smallest
# subnormal, signed zeros, the edges of every sane range.
ODD_FLOATS = [
    float("nan"),
    float("inf"),
    float("-inf"),
    5e-324,
    -5e-324,
    0.0,
    -0.0,
    1e-300,
    1e-6,
    1e-3,
    0.5,
    1.0,
    1.7976931348623157e308,
    -1.0,
    10.0,
    10.000001,
    1e20,
]
doubles = st.one_of(st.sampled_from(ODD_FLOATS), st.floats(allow_nan=True, allow_infinity=True))

# Names: usual ones, unicode, control characters, and long enough to find
# error messages that echo them unbounded (past ~8 KB gRPC drops the status).
texts = st.one_of(
    st.text(max_size=24),
    st.sampled_from(["", " ", "\x00", "²", "../etc/passwd", "%s%n", "{}", "\u202e", "a" * 300]),
    st.integers(4_000, 40_000).map(lambda n: "z" * n),
)


# -- byte mutations -----------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn, data: bytes, max_ops: int = 4) -> bytes:
    """``data`` after 1..max_ops of: flip a bit, truncate, splice random bytes
    in, delete a range, overwrite with a boundary byte (0x00, 0x7f, 0x80, 0xff)."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["flip", "truncate", "splice", "delete", "poke"]))
        n = len(buf)
        if op == "flip" and n:
            i = draw(st.integers(0, n - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate" and n:
            del buf[draw(st.integers(0, n - 1)) :]
        elif op == "splice":
            i = draw(st.integers(0, n))
            buf[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del buf[i : i + draw(st.integers(1, 16))]
        elif op == "poke" and n:
            buf[draw(st.integers(0, n - 1))] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
    return bytes(buf)


# -- images -----------------------------------------------------------------------
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_MAGICS = [PNG_SIGNATURE, b"\xff\xd8\xff\xe0", b"\xff\xd8\xff", b"BM", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
                b"II*\x00", b"MM\x00*", b"P5\n4 4\n255\n", b"P6\n", b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"#?RADIANCE\n",
                b"\x76\x2f\x31\x01", b"\x00\x00\x00\x1cftypavif"]  # fmt: skip
# Dimensions for edited headers, the telling ones first (hypothesis draws the
# first items of a list most): past OpenCV's pixel cap (2**30) with each side
# under libpng's limit (2**20), the 1x30000 and 100000x1, zero, one,
# the limits' edges, PNG's own limit (2**31 - 1), all ones.
ODD_DIMS = [40000, 65536, 100_000, 30000, 0, 1, 1 << 20, (1 << 20) + 1, 16384, 16385, 4096, 4097, 65535, 2, 3, 255, 256, 1 << 30,
            (1 << 31) - 1, 1 << 31, (1 << 32) - 1]  # fmt: skip


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bytes(pixels: np.ndarray, depth: int, color_type: int | None = None) -> bytes:
    """A PNG written by hand (so any header field can be edited after): grey,
    grey+alpha, RGB or RGBA by channel count, 8- or 16-bit big-endian samples."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[channels] if color_type is None else color_type
    h, w = pixels.shape[:2]
    samples = pixels.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in samples)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def random_pixels(seed: int, h: int, w: int, channels: int, depth: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = 65536 if depth == 16 else 256
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, top, size=shape, dtype=np.int64).astype(np.uint16 if depth == 16 else np.uint8)


@st.composite
def image_dims(draw: st.DrawFn) -> tuple[int, int]:
    """Small, or thin (one side up to 3000: the letterbox's worst case)."""
    if draw(st.booleans()):
        return draw(st.integers(1, 40)), draw(st.integers(1, 40))
    long, short = draw(st.integers(41, 3000)), draw(st.integers(1, 3))
    return (long, short) if draw(st.booleans()) else (short, long)


def pam_bytes(pixels: np.ndarray, maxval: int) -> bytes:
    """A PAM (Netpbm P7) image: any depth, 2 (grey + alpha) included, which
    OpenCV decodes to a 2-channel array."""
    h, w = pixels.shape[:2]
    depth = 1 if pixels.ndim == 2 else pixels.shape[2]
    tupltype = ["GRAYSCALE", "GRAYSCALE_ALPHA", "RGB", "RGB_ALPHA"][depth - 1]
    header = f"P7\nWIDTH {w}\nHEIGHT {h}\nDEPTH {depth}\nMAXVAL {maxval}\nTUPLTYPE {tupltype}\nENDHDR\n".encode()
    return header + pixels.astype(">u2" if maxval > 255 else np.uint8).tobytes()


def png_image(h: int, w: int, seed: int, channels: int, depth: int) -> tuple[str, bytes]:
    return f"png {h}x{w}x{channels} {depth}-bit", png_bytes(random_pixels(seed, h, w, channels, depth), depth)


@st.composite
def valid_images(draw: st.DrawFn) -> tuple[str, bytes]:
    """(label, bytes) of a decodable image: PNG with 1-4 channels at 8 or 16
    bits, a JPEG (grey or colour), or a format OpenCV also decodes with channel
    counts and sample types the pipeline must convert or refuse cleanly: PAM
    (1-4 channels, 2 included, 1- to 16-bit), TIFF (8/16-bit and float),
    WebP, BMP, PGM/PPM/PBM. Formats are drawn evenly (hypothesis favours the
    first choices of a list; the rare branches come first)."""
    h, w = draw(image_dims())
    seed = draw(st.integers(0, 2**32 - 1))
    fmt = draw(st.sampled_from(["pam", "png", "tiff", "jpeg", "webp", "bmp", "pgm", "ppm", "pbm"]))
    if fmt == "png":
        return png_image(h, w, seed, draw(st.integers(1, 4)), draw(st.sampled_from([8, 16])))
    h, w = min(h, 64), min(w, 64)
    if fmt == "pam":
        channels, maxval = draw(st.sampled_from([2, 1, 3, 4])), draw(st.sampled_from([255, 65535, 1]))
        pixels = np.random.default_rng(seed).integers(0, maxval + 1, size=(h, w, channels))
        return f"codec pam {h}x{w}x{channels} maxval {maxval}", pam_bytes(pixels, maxval)
    if fmt == "jpeg":
        channels = draw(st.sampled_from([3, 1]))
        ok, buf = cv2.imencode(".jpg", random_pixels(seed, h, w, channels, 8), [cv2.IMWRITE_JPEG_QUALITY, draw(st.integers(1, 100))])
        assert ok
        return f"jpeg {h}x{w}x{channels}", buf.tobytes()
    channels = {"pgm": 1, "pbm": 1, "ppm": 3}.get(fmt) or draw(st.sampled_from([4, 1, 3]))
    dtype = draw(st.sampled_from([np.float32, np.uint16, np.uint8])) if fmt in ("tiff", "pgm", "ppm") else np.uint8
    pixels = random_pixels(seed, h, w, channels, 16 if dtype == np.uint16 else 8).astype(dtype)
    if dtype == np.float32:
        pixels = pixels / np.float32(draw(st.sampled_from([1.0, 255.0, 1e-30])))
    ok, buf = cv2.imencode("." + fmt, pixels)
    assert ok, (fmt, channels, dtype)
    return f"codec {fmt} {h}x{w}x{channels} {np.dtype(dtype).name}", buf.tobytes()


def with_png_dims(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (CRC fixed), its pixel data unchanged."""
    buf = bytearray(data)
    buf[16:24] = struct.pack(">II", width, height)
    buf[29:33] = struct.pack(">I", zlib.crc32(bytes(buf[12:29])) & 0xFFFFFFFF)
    return bytes(buf)


@st.composite
def png_header_edit(draw: st.DrawFn, data: bytes) -> bytes:
    """Edit IHDR fields (width, height, bit depth, colour type) of a PNG, with
    the chunk CRC fixed (so the decoder believes it) or left stale."""
    buf = bytearray(data)
    if not data.startswith(PNG_SIGNATURE) or len(buf) < 33:
        return data
    field = draw(st.sampled_from(["both", "width", "height", "depth", "color"]))
    if field in ("width", "both"):
        buf[16:20] = struct.pack(">I", draw(st.one_of(st.sampled_from(ODD_DIMS), st.integers(0, 2**32 - 1))))
    if field in ("height", "both"):
        buf[20:24] = struct.pack(">I", draw(st.one_of(st.sampled_from(ODD_DIMS), st.integers(0, 2**32 - 1))))
    if field == "depth":
        buf[24] = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 32, 255]))
    if field == "color":
        buf[25] = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 255]))
    if draw(st.integers(0, 3)):  # mostly a consistent CRC: the decoder reads on
        buf[29:33] = struct.pack(">I", zlib.crc32(bytes(buf[12:29])) & 0xFFFFFFFF)
    return bytes(buf)


@st.composite
def hostile_images(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid image, or one mutated (bit flips, truncation, splices), a PNG
    with edited header fields (dimensions past every limit, bad depths and
    colour types), arbitrary bytes, or bytes behind an image format's magic."""
    kind = draw(st.sampled_from(["header", "valid", "mutated", "header+mutated", "magic", "bytes"]))
    if kind == "bytes":
        return kind, draw(st.binary(max_size=2048))
    if kind == "magic":
        return kind, draw(st.sampled_from(IMAGE_MAGICS)) + draw(st.binary(max_size=1024))
    if kind.startswith("header"):
        h, w = draw(image_dims())
        label, data = png_image(h, w, draw(st.integers(0, 2**32 - 1)), draw(st.integers(1, 4)), draw(st.sampled_from([8, 16])))
        data = draw(png_header_edit(data))
    else:
        label, data = draw(valid_images())
        if kind == "valid":
            return label, data
    if kind.endswith("mutated"):
        data = draw(mutated(data))
    return f"{kind} {label}", data


# -- music primers -------------------------------------------------------------------
MUSIC_MAGICS = [b"MThd", b"MThd\x00\x00\x00\x06", b"PK\x03\x04", b"<?xml", b"<score-partwise>", b"\xef\xbb\xbf<?xml",
                b"<score-timewise version='3.1'>"]  # fmt: skip


@st.composite
def melodies(draw: st.DrawFn) -> np.ndarray:
    """A short event array (pitch or rest, duration) the encoders accept."""
    from seedlock.core import music_events as me

    values = draw(st.lists(st.tuples(st.one_of(st.none(), st.integers(36, 96)), st.sampled_from(me.DURATIONS)), min_size=1, max_size=12))
    if all(p is None for p, _ in values):  # a primer needs one note; rests alone are refused
        values[0] = (60, values[0][1])
    return me.from_values(values)


def mxl_bytes(xml: bytes, inner: str = "score.xml", container: bytes | None = None, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """Compressed MusicXML: a zip with META-INF/container.xml naming the score."""
    if container is None:
        container = (
            b'<?xml version="1.0" encoding="UTF-8"?><container><rootfiles>'
            + f'<rootfile full-path="{inner}" media-type="application/vnd.recordare.musicxml+xml"/>'.encode()
            + b"</rootfiles></container>"
        )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as z:
        for name, body in (("mimetype", b"application/vnd.recordare.musicxml"), ("META-INF/container.xml", container), (inner, xml)):
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), body, compress_type=method)  # fixed: same bytes every run
    return out.getvalue()


def musicxml_of(events: np.ndarray) -> bytes:
    """MusicXML of a melody without what music21 draws at random or from the
    clock (part ids, encoding date): hypothesis needs the same bytes every run."""
    from seedlock.core import music_events as me

    xml = re.sub(rb'id="P[0-9a-f]+"', b'id="P1"', me.to_musicxml_bytes(events))
    return re.sub(rb"\s*<encoding-date>[^<]*</encoding-date>", b"", xml, count=1)


@st.composite
def xml_number_edit(draw: st.DrawFn, xml: bytes) -> bytes:
    """Replace numbers inside MusicXML (divisions, durations, octaves, alters,
    tempo) with hostile ones: zero, negative, huge, fractional, NaN."""
    numbers = list(re.finditer(rb">(-?\d+(?:\.\d+)?)<", xml))
    if not numbers:
        return xml
    out = bytearray(xml)
    for m in sorted(draw(st.lists(st.sampled_from(numbers), min_size=1, max_size=4, unique_by=lambda m: m.start())),
                    key=lambda m: -m.start()):  # fmt: skip
        value = draw(st.sampled_from([b"0", b"-1", b"-4", b"99999999999999999999", b"1e308", b"NaN", b"0.0000001", b"", b"x",
                                      b"2147483648", b"-2147483649", b"3.5"]))  # fmt: skip
        out[m.start(1) : m.end(1)] = value
    return bytes(out)


@st.composite
def midi_header_edit(draw: st.DrawFn, data: bytes) -> bytes:
    """Edit the MIDI header: format, track count, division (0, SMPTE,
    negative), or a track's length field (short, huge)."""
    buf = bytearray(data)
    if not data.startswith(b"MThd") or len(buf) < 22:
        return data
    field = draw(st.sampled_from(["format", "ntracks", "division", "track_length", "header_length"]))
    if field == "format":
        buf[8:10] = struct.pack(">H", draw(st.sampled_from([0, 1, 2, 3, 0xFFFF])))
    elif field == "ntracks":
        buf[10:12] = struct.pack(">H", draw(st.sampled_from([0, 2, 100, 0xFFFF])))
    elif field == "division":
        buf[12:14] = struct.pack(">H", draw(st.sampled_from([0, 1, 0x7FFF, 0x8000, 0xE728, 0xFFFF])))
    elif field == "track_length":
        buf[18:22] = struct.pack(">I", draw(st.sampled_from([0, 1, 3, 0x7FFFFFFF, 0xFFFFFFFF])))
    else:
        buf[4:8] = struct.pack(">I", draw(st.sampled_from([0, 2, 5, 7, 0xFFFFFFFF])))
    return bytes(buf)


@st.composite
def hostile_primers(draw: st.DrawFn) -> tuple[str, bytes]:
    """Arbitrary bytes, bytes behind a music format's magic, or a small valid
    MIDI / MusicXML / MXL file, mutated (bytes, header fields, numbers, zip members)."""
    from seedlock.core import music_events as me

    kind = draw(st.sampled_from(["bytes", "magic", "midi", "musicxml", "mxl"]))
    if kind == "bytes":
        return kind, draw(st.binary(max_size=2048))
    if kind == "magic":
        return kind, draw(st.sampled_from(MUSIC_MAGICS)) + draw(st.binary(max_size=1024))
    events = draw(melodies())
    how = draw(st.sampled_from(["valid", "bytes", "structure", "structure+bytes"]))
    if kind == "midi":
        data = me.to_midi_bytes(events)
        if "structure" in how:
            data = draw(midi_header_edit(data))
    else:
        xml = musicxml_of(events)
        if "structure" in how:
            xml = draw(xml_number_edit(xml))
        if kind == "mxl" and "structure" in how and draw(st.booleans()):
            # A small archive that inflates to megabytes (a comment of spaces).
            pad = b"<!--" + b" " * draw(st.sampled_from([1 << 20, 8 << 20])) + b"-->"
            xml = xml.replace(b"<score-partwise", pad + b"<score-partwise", 1)
        if kind == "musicxml":
            data = xml
        else:
            inner = draw(st.sampled_from(["score.xml", "../score.xml", "a/b.musicxml", "/abs.xml"])) if "structure" in how else "score.xml"
            container = draw(st.sampled_from([None, b"", b"<container/>", b"<?xml version='1.0'?><container><rootfiles>"
                                              b"<rootfile full-path='missing.xml'/></rootfiles></container>"]))  # fmt: skip
            method = draw(st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]))
            data = mxl_bytes(xml, inner, container if "structure" in how else None, method)
    if "bytes" in how:
        data = draw(mutated(data))
    return f"{kind} {how} ({len(events)} events)", data


# -- KServe v2 ----------------------------------------------------------------------
V2_DATATYPES = [d.v2 for d in TABLE]
ODD_DATATYPES = ["BYTES", "BF16", "FP8", "fp32", "FLOAT32", "", "INT128", "FP32 ", "\x00"]
ODD_SHAPE_DIMS = [-(2**63), -2, -1, 0, 2**31, 2**32 + 4, 2**40, 2**62, 2**63 - 1]
ODD_VERSIONS = ["", "1", "01", " 1 ", "0", "2", "-1", "1.0", "1e3", "x", "²", "١", "9" * 30, "9" * 5000]


@st.composite
def tensor_values(draw: st.DrawFn, datatype: str, count: int) -> np.ndarray:
    """``count`` values of ``datatype`` (float ones with NaN, inf, subnormals)."""
    dtype = V2_TO_NUMPY[datatype]
    seed = draw(st.integers(0, 2**32 - 1))
    raw = np.random.default_rng(seed).integers(0, 256, size=count * dtype.itemsize, dtype=np.uint8).tobytes()
    values = np.frombuffer(raw, dtype=dtype).copy()
    if datatype == "BOOL":
        values = np.frombuffer(raw, dtype=np.uint8).astype(bool)
    if dtype.kind == "f" and count and draw(st.booleans()):
        with np.errstate(over="ignore"):  # 1e38 is inf in FP16: one more odd value
            odd = np.array([np.nan, np.inf, -np.inf, 5e-324, -0.0, 1e38, -1e38], dtype=np.float64).astype(dtype)
        values[: min(count, len(odd))] = odd[: min(count, len(odd))]
    return values


def _typed(contents: v2.InferTensorContents, datatype: str, values: np.ndarray) -> None:
    getattr(contents, TYPED_FIELD[datatype]).extend(values.ravel().tolist())


@st.composite
def v2_parameters(draw: st.DrawFn, target) -> None:
    """Random ``InferParameter`` entries, Triton's binary_data ones among them."""
    for key in draw(st.lists(st.one_of(st.sampled_from(["binary_data", "binary_data_output", "classification",
                                                        "binary_data_size", "priority", "timeout"]), st.text(max_size=8)),
                             max_size=3)):  # fmt: skip
        p = target[key]
        which = draw(st.sampled_from(["bool", "int64", "string", "none"]))
        if which == "bool":
            p.bool_param = draw(st.booleans())
        elif which == "int64":
            p.int64_param = draw(ints(*INT64))
        elif which == "string":
            p.string_param = draw(st.text(max_size=16))


@st.composite
def infer_requests(draw: st.DrawFn, models: dict[str, tuple[list[tuple[str, str, list[int], int]], list[str]]]) -> v2.ModelInferRequest:
    """A ModelInferRequest that fits a model (name, datatype, shape, contents,
    outputs, parameters), with none to three fields drawn hostile and 0..3
    mutations of its tensors. ``models`` maps a model name to (its inputs as
    (name, v2 datatype, manifest shape, H/W divisor), its output names)."""
    hostile = set(draw(st.lists(st.sampled_from(["model_name", "model_version", "id", "outputs", "parameters"]), max_size=3, unique=True)))
    name = draw(st.sampled_from(sorted(models)))
    inputs, outputs = models[name]
    request = v2.ModelInferRequest(model_name=name, model_version=draw(st.sampled_from(["", "1"])), id=draw(st.text(max_size=8)))
    if "model_name" in hostile:
        request.model_name = draw(st.one_of(st.sampled_from(["", "nope", "composer", name.upper(), name + " "]), texts))
    if "model_version" in hostile:
        request.model_version = draw(st.one_of(st.sampled_from(ODD_VERSIONS), st.text(max_size=6)))
    if "id" in hostile:
        request.id = draw(texts)
    # One encoding per request (raw for all inputs, or typed for all); FP16 travels raw only.
    raw = draw(st.booleans()) or any(dt not in TYPED_FIELD for _, dt, _, _ in inputs)
    for tname, datatype, spec_shape, divisor in inputs:
        shape = [d if d >= 0 else draw(st.integers(1, 3)) * (divisor if i >= 2 else 1) for i, d in enumerate(spec_shape)]
        tensor = request.inputs.add(name=tname, datatype=datatype, shape=shape)
        values = draw(tensor_values(datatype, int(np.prod(shape))))
        if raw:
            request.raw_input_contents.append(values.astype(values.dtype.newbyteorder("<")).tobytes())
        else:
            _typed(tensor.contents, datatype, values)
    for _ in range(draw(st.integers(0, 3))):
        _mutate_request(draw, request)
    if "outputs" in hostile:
        for out in draw(st.lists(st.one_of(st.sampled_from(outputs + ["logits", "y", "out"]), texts), max_size=3)):
            draw(v2_parameters(request.outputs.add(name=out).parameters))
    elif draw(st.booleans()):
        out = request.outputs.add(name=outputs[0])
        if draw(st.booleans()):
            out.parameters["binary_data"].bool_param = draw(st.booleans())
    if "parameters" in hostile:
        draw(v2_parameters(request.parameters))
    elif draw(st.booleans()):
        request.parameters["binary_data_output"].bool_param = draw(st.booleans())
    return request


def _mutate_request(draw: st.DrawFn, request: v2.ModelInferRequest) -> None:
    what = draw(st.sampled_from(["datatype", "shape", "rank", "raw_length", "raw_extra", "raw_drop", "typed_field",
                                 "typed_count", "typed_range", "rename", "duplicate", "drop_input", "both_contents"]))  # fmt: skip
    tensors = list(request.inputs)
    t = draw(st.sampled_from(tensors)) if tensors else None
    i = tensors.index(t) if t is not None else -1
    if t is None:
        request.inputs.add(name=draw(texts), datatype=draw(st.sampled_from(V2_DATATYPES)), shape=[1])
    elif what == "datatype":
        t.datatype = draw(st.one_of(st.sampled_from(V2_DATATYPES + ODD_DATATYPES), st.text(max_size=6)))
    elif what == "shape" and len(t.shape):
        t.shape[draw(st.integers(0, len(t.shape) - 1))] = draw(st.one_of(st.sampled_from(ODD_SHAPE_DIMS), ints(*INT64)))
    elif what == "rank":
        del t.shape[:]
        t.shape.extend(draw(st.lists(st.one_of(st.integers(0, 8), st.sampled_from(ODD_SHAPE_DIMS)), max_size=6)))
    elif what == "raw_length" and i < len(request.raw_input_contents):
        data = request.raw_input_contents[i]
        k = draw(st.integers(-len(data), 64))
        request.raw_input_contents[i] = data[: len(data) + k] if k < 0 else data + bytes(k)
    elif what == "raw_extra":
        request.raw_input_contents.append(draw(st.binary(max_size=64)))
    elif what == "raw_drop" and request.raw_input_contents:
        del request.raw_input_contents[-1]
    elif what == "typed_field":
        field = draw(st.sampled_from(["bool_contents", "int_contents", "int64_contents", "uint_contents", "uint64_contents",
                                      "fp32_contents", "fp64_contents", "bytes_contents"]))  # fmt: skip
        values = {"bool_contents": st.booleans(), "int_contents": ints(*INT32), "int64_contents": ints(*INT64),
                  "uint_contents": ints(*UINT32), "uint64_contents": ints(*UINT64),
                  "fp32_contents": st.floats(width=32), "fp64_contents": doubles, "bytes_contents": st.binary(max_size=8)}[field]  # fmt: skip
        getattr(t.contents, field).extend(draw(st.lists(values, max_size=48)))
    elif what == "typed_count":
        for field in (
            "fp32_contents",
            "int_contents",
            "int64_contents",
            "uint_contents",
            "uint64_contents",
            "bool_contents",
            "fp64_contents",
        ):
            values = getattr(t.contents, field)
            if len(values):
                del values[draw(st.integers(0, len(values) - 1)) :]
    elif what == "typed_range":
        t.contents.int64_contents.extend(draw(st.lists(ints(*INT64), min_size=1, max_size=4)))
        t.contents.uint64_contents.extend(draw(st.lists(ints(*UINT64), min_size=1, max_size=4)))
    elif what == "rename":
        t.name = draw(texts)
    elif what == "duplicate":
        request.inputs.add().CopyFrom(t)
        if request.raw_input_contents:
            request.raw_input_contents.append(request.raw_input_contents[min(i, len(request.raw_input_contents) - 1)])
    elif what == "drop_input":
        del request.inputs[i]
    elif what == "both_contents":
        t.contents.fp32_contents.extend([1.0] * draw(st.integers(0, 8)))


# -- task parameters ------------------------------------------------------------------
@st.composite
def fields(draw: st.DrawFn, **spec: tuple[st.SearchStrategy, st.SearchStrategy]) -> dict:
    """Request fields, each drawn from its (valid, hostile) pair: none to three of
    them hostile, the rest valid, so that answers (and the parsers' checks of one
    bad field among good ones) are reached as often as refusals."""
    names = list(spec)
    hostile = set(draw(st.lists(st.sampled_from(names), max_size=min(3, len(names)), unique=True)))
    return {name: draw(spec[name][name in hostile]) for name in names}
