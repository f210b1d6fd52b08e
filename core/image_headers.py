"""An encoded image's size, read from its header before any pixel is decoded.

The server checks a request's image against its limits (``--max-image-pixels``,
``--max-image-side``) from these few header bytes, so a small file that
declares a huge image (a decompression bomb) is refused before the decoder
allocates anything. The fields read are the ones OpenCV's decoders read, so
the size checked is the size decoded.

Accepted: PNG, JPEG, WebP, BMP, GIF, TIFF and PNM (PBM, PGM, PPM, PAM). Refused
with a message naming those: animated PNG/WebP, JPEG with more than 8 bits
per sample, TIFF with float, signed or over-16-bit samples, BigTIFF, and the
formats OpenCV decodes but whose headers this module does not read (JPEG 2000,
AVIF, OpenEXR, Radiance HDR, PFM, Sun raster, ...).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

ACCEPTED_FORMATS = "PNG, JPEG, WebP, BMP, GIF, TIFF or PNM (PBM/PGM/PPM/PAM)"

# Bounds on header walking, so a crafted header costs microseconds: real files
# have a handful of PNG chunks before the pixels and a few dozen TIFF tags.
_MAX_PNG_CHUNKS = 1000
_MAX_TIFF_TAGS = 1000
_MAX_PNM_HEADER = 4096
_MAX_JPEG_SEGMENTS = 1000


class ImageError(ValueError):
    """The bytes are not an image we can use (the server answers INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class ImageHeader:
    """What the decoder will produce: ``width`` x ``height`` pixels of at most
    ``channels`` samples of ``bits`` (8 or 16) bits. ``buffer_pixels``: the
    pixels of a working buffer the decoder allocates besides the image (a TIFF
    tile or strip), checked against the same limits."""

    format: str
    width: int
    height: int
    channels: int
    bits: int = 8
    buffer_pixels: int = 0

    @property
    def pixels(self) -> int:
        return self.width * self.height


# Formats OpenCV would decode but whose headers this module does not read.
_REFUSED = [
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"#?RGBE", "Radiance HDR"),
    (b"PF", "PFM (floating point)"),
    (b"Pf", "PFM (floating point)"),
    (b"\x59\xa6\x6a\x95", "Sun raster"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"qoif", "QOI"),
]


def _bad(data: bytes, why: str) -> ImageError:
    return ImageError(f"could not decode {len(data)} bytes as an image: {why}")


def _refused(data: bytes, what: str, instead: str = f"send {ACCEPTED_FORMATS}") -> ImageError:
    return _bad(data, f"{what} is not accepted; {instead}")


def read_header(data: bytes) -> ImageHeader:
    """The size and sample layout an image's header declares. Raises
    :class:`ImageError` for bytes in no accepted format, a truncated or
    inconsistent header, or a variant the decoders are not trusted with."""
    head = bytes(data[:16])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg(data)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(data)
    if head.startswith(b"BM"):
        return _bmp(data)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(data)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(data)
    if head[:4] in (b"II+\x00", b"MM\x00+"):
        raise _refused(data, "BigTIFF")
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"1234567" and head[2:3].isspace():
        return _pnm(data)
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1"):
        raise _refused(data, "AVIF/HEIF")
    for signature, name in _REFUSED:
        if head.startswith(signature):
            raise _refused(data, name)
    raise _bad(data, f"not {ACCEPTED_FORMATS}")


def _unpack(data: bytes, fmt: str, offset: int, what: str) -> tuple:
    size = struct.calcsize(fmt)
    if offset < 0 or offset + size > len(data):
        raise _bad(data, f"{what} header is truncated")
    return struct.unpack_from(fmt, data, offset)


# --------------------------------------------------------------------------- PNG


def _png(data: bytes) -> ImageHeader:
    length, kind, width, height, depth, colour = _unpack(data, ">I4sIIBB", 8, "PNG")
    if kind != b"IHDR" or length != 13:
        raise _bad(data, "PNG without an IHDR chunk first")
    if depth not in (1, 2, 4, 8, 16) or colour not in (0, 2, 3, 4, 6):
        raise _bad(data, f"PNG with bit depth {depth} and colour type {colour}")
    # An animation (acTL before the first IDAT) is decoded through frame
    # buffers of several times the image: refused; a still image is what we serve.
    pos = 8 + 12 + 13
    for _ in range(_MAX_PNG_CHUNKS):
        if pos + 8 > len(data):
            break  # truncated: the decoder reports it
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind in (b"IDAT", b"IEND"):
            break
        if kind == b"acTL" and length >= 8 and pos + 12 <= len(data) and struct.unpack_from(">I", data, pos + 8)[0] > 1:
            raise _refused(data, "an animated PNG", "send one frame as a still image")
        pos += 12 + length
    else:
        raise _bad(data, f"PNG with more than {_MAX_PNG_CHUNKS} chunks before its image data")
    # grey stays one channel; grey+alpha, palette and colour may come out as 4 (alpha, tRNS)
    return ImageHeader("PNG", width, height, 1 if colour == 0 else 4, 16 if depth == 16 else 8)


# --------------------------------------------------------------------------- JPEG

_JPEG_MARKER = re.compile(rb"\xff+([\x01-\xfe])")  # a marker: 0xFF (repeated), then a code other than 00
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field


def _jpeg(data: bytes) -> ImageHeader:
    """The first frame header (SOFn), found as libjpeg finds it: its next_marker
    skips stray bytes, 0xFF fill and stuffed FF 00 pairs between segments."""
    pos = 2
    for _ in range(_MAX_JPEG_SEGMENTS):
        found = _JPEG_MARKER.search(data, pos)
        if found is None:
            raise _bad(data, "JPEG header is truncated or has no frame header")
        marker, pos = found.group(1)[0], found.end()
        if marker in _STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0xDA):
            raise _bad(data, "JPEG without a frame header before its image data")
        (length,) = _unpack(data, ">H", pos, "JPEG")
        if length < 2:
            raise _bad(data, "JPEG with a corrupt segment length")
        if marker in _SOF:
            precision, height, width, components = _unpack(data, ">BHHB", pos + 2, "JPEG")
            if precision != 8:
                raise _refused(data, f"a JPEG with {precision}-bit samples", "send an 8-bit JPEG or a 16-bit PNG")
            if height == 0 or width == 0:
                raise _bad(data, f"JPEG of {width}x{height} (a height set later by DNL is not supported)")
            if components not in (1, 3, 4):
                raise _bad(data, f"JPEG with {components} components")
            return ImageHeader("JPEG", width, height, components)
        pos += length
    raise _bad(data, f"JPEG with more than {_MAX_JPEG_SEGMENTS} segments before its frame header")


# --------------------------------------------------------------------------- WebP


def _webp(data: bytes) -> ImageHeader:
    (kind,) = _unpack(data, "4s", 12, "WebP")
    body = 20
    if kind == b"VP8 ":
        tag = _unpack(data, "3s", body + 3, "WebP")[0]
        if tag != b"\x9d\x01\x2a":
            raise _bad(data, "WebP (VP8) without its start code")
        w, h = _unpack(data, "<HH", body + 6, "WebP")
        return ImageHeader("WebP", w & 0x3FFF, h & 0x3FFF, 3)
    if kind == b"VP8L":
        signature, bits = _unpack(data, "<BI", body, "WebP")
        if signature != 0x2F:
            raise _bad(data, "WebP (VP8L) without its signature")
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 4)
    if kind == b"VP8X":
        flags, w0, w1, w2, h0, h1, h2 = _unpack(data, "<B3x6B", body, "WebP")
        if flags & 0x02:
            raise _refused(data, "an animated WebP", "send one frame as a still image")
        return ImageHeader("WebP", (w0 | w1 << 8 | w2 << 16) + 1, (h0 | h1 << 8 | h2 << 16) + 1, 4)
    raise _bad(data, f"WebP whose first chunk is {kind!r}, not VP8, VP8L or VP8X")


# --------------------------------------------------------------------------- BMP


def _bmp(data: bytes) -> ImageHeader:
    (dib,) = _unpack(data, "<I", 14, "BMP")
    if dib == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height, _planes, bpp = _unpack(data, "<HHHH", 18, "BMP")
    elif 36 <= dib < 1 << 31:  # what OpenCV's BMP reader takes as a Windows header
        width, height, _planes, bpp = _unpack(data, "<iiHH", 18, "BMP")
        height = abs(height)  # negative: stored top-down
    else:
        raise _bad(data, f"BMP with a {dib}-byte header")
    if width <= 0 or height <= 0:
        raise _bad(data, f"BMP of {width}x{height}")
    return ImageHeader("BMP", width, height, 4 if bpp == 32 else 3)


# --------------------------------------------------------------------------- GIF


def _gif(data: bytes) -> ImageHeader:
    width, height = _unpack(data, "<HH", 6, "GIF")
    if width == 0 or height == 0:
        raise _bad(data, f"GIF of {width}x{height}")
    # OpenCV decodes the first frame into a BGRA canvas of the screen size (its
    # frames must fit inside it), plus one byte of LZW codes per pixel.
    return ImageHeader("GIF", width, height, 4)


# --------------------------------------------------------------------------- TIFF

_TIFF_SHORT, _TIFF_LONG = 3, 4


def _tiff(data: bytes) -> ImageHeader:
    """The first image file directory: the page OpenCV decodes."""
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = _unpack(data, order + "I", 4, "TIFF")
    (count,) = _unpack(data, order + "H", ifd, "TIFF")
    if count > _MAX_TIFF_TAGS:
        raise _bad(data, f"TIFF with {count} tags in its first directory")
    tags: dict[int, list[int]] = {}
    for i in range(count):
        tag, kind, n, _ = _unpack(data, order + "HHII", ifd + 2 + 12 * i, "TIFF")
        if tag not in (256, 257, 258, 277, 278, 322, 323, 339):
            continue
        if tag in tags:
            raise _bad(data, f"TIFF with tag {tag} twice")
        if kind not in (_TIFF_SHORT, _TIFF_LONG) or not 1 <= n <= 4:
            raise _bad(data, f"TIFF tag {tag} of type {kind} with {n} values")
        fmt = order + ("H" if kind == _TIFF_SHORT else "I") * n
        where = ifd + 2 + 12 * i + 8
        if struct.calcsize(fmt) > 4:  # values stored elsewhere: the field holds their offset
            (where,) = _unpack(data, order + "I", where, "TIFF")
        tags[tag] = list(_unpack(data, fmt, where, "TIFF"))
    if 256 not in tags or 257 not in tags:
        raise _bad(data, "TIFF without its image width and length")
    width, height = tags[256][0], tags[257][0]
    if width == 0 or height == 0:
        raise _bad(data, f"TIFF of {width}x{height}")
    bits = max(tags.get(258, [1]))
    channels = tags.get(277, [1])[0]
    if bits > 16 or bits == 0 or any(f != 1 for f in tags.get(339, [1])):
        raise _refused(data, f"a TIFF of {bits}-bit, signed or floating-point samples", "send 8- or 16-bit unsigned samples")
    if not 1 <= channels <= 4:
        raise _bad(data, f"TIFF with {channels} samples per pixel")
    # OpenCV reads a tile (or strip) at a time into a buffer of the tile's size
    # as the header declares it, not clipped to the image: checked like an image.
    if 322 in tags or 323 in tags:
        tile_w, tile_h = tags.get(322, [width])[0] or width, tags.get(323, [0])[0] or height
    else:
        rows = tags.get(278, [0])[0]
        tile_w, tile_h = width, (height if rows in (0, 0xFFFFFFFF) else rows)
    return ImageHeader("TIFF", width, height, 4, 16 if bits > 8 else 8, tile_w * tile_h)


# --------------------------------------------------------------------------- PNM


def _pnm(data: bytes) -> ImageHeader:
    kind = data[1:2]
    head = bytes(data[:_MAX_PNM_HEADER])
    if kind == b"7":
        return _pam(data, head)
    fields, pos = [], 2
    wanted = 2 if kind in (b"1", b"4") else 3
    while len(fields) < wanted:  # OpenCV's ReadNumber: skip whitespace and '#' comments
        if pos >= len(head):
            raise _bad(data, f"PNM header is truncated or longer than {_MAX_PNM_HEADER} bytes")
        c = head[pos : pos + 1]
        if c == b"#":
            end = min((i for i in (head.find(b"\n", pos), head.find(b"\r", pos)) if i >= 0), default=-1)
            if end < 0:
                raise _bad(data, "PNM header is truncated")
            pos = end + 1
        elif c.isspace():
            pos += 1
        elif c.isdigit():
            start = pos
            while pos < len(head) and head[pos : pos + 1].isdigit():
                pos += 1
            fields.append(int(head[start:pos]))
        else:
            raise _bad(data, "PNM header with an unexpected character")
    width, height = fields[0], fields[1]
    maxval = fields[2] if wanted == 3 else 1
    if width == 0 or height == 0 or not 1 <= maxval <= 65535:
        raise _bad(data, f"PNM of {width}x{height} with maximum value {maxval}")
    return ImageHeader("PNM", width, height, 3 if kind in (b"3", b"6") else 1, 16 if maxval > 255 else 8)


def _pam(data: bytes, head: bytes) -> ImageHeader:
    end = head.find(b"ENDHDR")
    if end < 0:
        raise _bad(data, f"PAM header is truncated or longer than {_MAX_PNM_HEADER} bytes")
    values: dict[str, int] = {}
    for line in head[3:end].splitlines():
        parts = line.split()
        key = parts[0].upper().decode("ascii", "replace") if parts else ""
        if key in ("WIDTH", "HEIGHT", "DEPTH", "MAXVAL"):
            if len(parts) < 2 or not parts[1].isdigit() or key in values:
                raise _bad(data, f"PAM header with a bad or repeated {key}")
            values[key] = int(parts[1])
    width, height = values.get("WIDTH", 0), values.get("HEIGHT", 0)
    depth, maxval = values.get("DEPTH", 0), values.get("MAXVAL", 0)
    if width == 0 or height == 0 or not 1 <= depth <= 4 or not 1 <= maxval <= 65535:
        raise _bad(data, f"PAM of {width}x{height}, depth {depth}, maximum value {maxval}")
    return ImageHeader("PNM", width, height, depth, 16 if maxval > 255 else 8)
