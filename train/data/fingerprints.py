"""The embedded fake-fingerprint dataset: procedural impressions drawn from a seed.

No machine here reaches the internet, so the fingerprint pipeline ships its own
"actual fake fingerprints". Impression ``(seed, quality, index)`` is drawn from
its own :class:`SeedStream`, so it is the same image on every machine.

How one impression is made (numpy + OpenCV, rendered at twice the output size
and reduced with area averaging):

1. **Orientation field** from the zero-pole model of Sherlock and Monro: a
   ridge angle ``theta(z) = theta0 + 1/2 sum arg(z - core) - 1/2 sum arg(z - delta)``
   for an arch (no singular points, a smooth bump), a left or right loop
   (one core, one delta), a whorl (two cores, two deltas) or a tented arch,
   bent further by smooth noise.
2. **Ridges grown from noise** (the SFINGE idea): white noise is filtered
   repeatedly with a bank of Gabor filters, each pixel taking the response of
   the filter aligned with its local orientation, and saturated between
   passes. Ridges emerge continuous, with natural endings and bifurcations, at
   a ridge period drawn per print.
3. **Impression**: a fingertip-shaped contact area with a ragged edge, uneven
   pressure, dark ridges on a light background, blur and sensor noise.
4. **Quality** (thesis 3.6, Figure 31): ``Q1`` clean; ``Q2`` cracks and a
   whitened outline; ``Q3`` large whitened patches from poor pressure, with
   cracks and lower contrast; ``Q5`` only part of the print captured, the rest
   blank.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from seedlock.core.fingerprints import QUALITIES, tile
from seedlock.core.rng import SeedStream

# Held-out impressions ("actual fake fingerprints the DCGAN never saw") use
# stream indices from here on, so they never overlap any training set.
HOLDOUT_OFFSET = 1 << 32
_N_BINS = 8  # Gabor orientations (a multiple of 2); neighbours are blended per pixel
_ITERATIONS = 4  # growth passes: ridges are continuous after 3-4
_PAPER = 238.0  # background grey level (sensor glass / paper)


def _stream(seed: int, quality: str, index: int) -> SeedStream:
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    # one stream per (quality, index): 8 bits of quality above 48 bits of index
    return SeedStream(seed, ((QUALITIES.index(quality) + 1) << 48) | index)


def _smooth_noise(rs: SeedStream, size: int, cells: int) -> np.ndarray:
    """float32 noise in about [-1, 1] varying over ``size / cells`` pixels."""
    grid = rs.uniform((cells, cells), -1.0, 1.0).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


# --------------------------------------------------------------------------- orientation


def _orientation(rs: SeedStream, r: int) -> np.ndarray:
    """Ridge angle (radians, modulo pi) at every pixel of an ``r x r`` canvas."""
    yy, xx = np.mgrid[0:r, 0:r].astype(np.float64)
    z = (xx - r / 2) / r + 1j * (r / 2 - yy) / r  # centred, y up, unit = canvas side
    kind = int(rs.integers(0, 10))
    cx, cy = rs.uniform((), -0.06, 0.06), rs.uniform((), -0.02, 0.1)
    if kind <= 1:  # plain arch: ridges bow upwards over a bump, no singular points
        amp, width = rs.uniform((), 0.8, 1.6), rs.uniform((), 0.18, 0.3)
        fade = np.clip(0.6 - z.imag + cy, 0.1, 1.2)  # flatter towards the bottom
        slope = -amp * fade * 2 * (z.real - cx) / width * np.exp(-(((z.real - cx) / width) ** 2))
        theta = np.arctan(slope)
    else:
        if kind <= 5:  # loop (left or right): one core above one delta
            side = 1 if kind <= 3 else -1
            cores = [complex(cx, cy + 0.08)]
            deltas = [complex(cx + side * rs.uniform((), 0.12, 0.22), cy - rs.uniform((), 0.2, 0.28))]
        elif kind <= 8:  # whorl: two cores, two deltas
            gap = rs.uniform((), 0.02, 0.06)
            cores = [complex(cx, cy + 0.05 + gap), complex(cx + rs.uniform((), -0.03, 0.03), cy + 0.05 - gap)]
            dy = cy - rs.uniform((), 0.2, 0.28)
            deltas = [complex(cx - rs.uniform((), 0.22, 0.3), dy), complex(cx + rs.uniform((), 0.22, 0.3), dy)]
        else:  # tented arch: core right above the delta
            cores = [complex(cx, cy + 0.02)]
            deltas = [complex(cx, cy - rs.uniform((), 0.08, 0.12))]
        theta = np.zeros((r, r))
        for c in cores:
            theta += 0.5 * np.angle(z - c)
        for d in deltas:
            theta -= 0.5 * np.angle(z - d)
    # smooth bending so no two prints share a field exactly
    theta = theta + 0.25 * _smooth_noise(rs, r, 4).astype(np.float64) + rs.uniform((), -0.15, 0.15)
    # image rows grow downwards: flip the angle's sign for image coordinates
    return np.mod(-theta, np.pi).astype(np.float32)


# --------------------------------------------------------------------------- ridges


@lru_cache(maxsize=32)
def _gabor_pairs(period: float) -> tuple[float, list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]:
    """Separable pieces of a Gabor bank, and the kernel half-width.

    With an isotropic envelope ``g``, a Gabor filter whose wave vector points at
    angle ``phi`` splits into two separable terms:
    ``g(x)g(y)cos(kx x + ky y) = [g cos(kx x)][g cos(ky y)] - [g sin(kx x)][g sin(ky y)]``
    (``CC - SS``), and the filter at ``pi - phi`` is ``CC + SS``. So ``_N_BINS``
    orientations cost about ``_N_BINS`` separable passes instead of
    ``_N_BINS`` full 2-D convolutions. Returns, per ``phi`` in ``[0, pi/2]``,
    ``(bin, mirrored bin, cx, cy, sx, sy)`` 1-D kernels.
    """
    sigma = 0.5 * period
    half = int(np.ceil(2.0 * sigma))
    t = np.arange(-half, half + 1, dtype=np.float64)
    env = np.exp(-(t * t) / (2 * sigma * sigma))
    k = 2 * np.pi / period
    pieces = []
    for b in range(_N_BINS // 2 + 1):
        phi = b * np.pi / _N_BINS
        kx, ky = k * np.cos(phi), k * np.sin(phi)
        f32 = lambda a: a.astype(np.float32)  # noqa: E731
        pieces.append((b, (_N_BINS - b) % _N_BINS, f32(env * np.cos(kx * t)), f32(env * np.cos(ky * t)),
                       f32(env * np.sin(kx * t)), f32(env * np.sin(ky * t))))  # fmt: skip
    return float(half), pieces


def _grow_ridges(rs: SeedStream, theta: np.ndarray, period: float) -> np.ndarray:
    """Ridge pattern in [-1, 1] (positive = ridge) following ``theta``."""
    r = theta.shape[0]
    half, pieces = _gabor_pairs(round(float(period), 1))
    # wave direction = ridge direction + 90 degrees; blend the two nearest bins
    pos = np.mod(theta + np.pi / 2, np.pi) * (_N_BINS / np.pi)
    lo = np.floor(pos).astype(np.int32) % _N_BINS
    w = (pos - np.floor(pos)).astype(np.float32)
    weights = np.zeros((_N_BINS, r, r), np.float32)
    rows, cols = np.indices((r, r))
    weights[lo, rows, cols] = 1.0 - w
    weights[(lo + 1) % _N_BINS, rows, cols] += w
    img = rs.uniform((r, r), -1.0, 1.0).astype(np.float32)
    img *= (rs.uniform((r, r)) < 0.15).astype(np.float32)  # sparse seeds grow cleaner ridges
    border = cv2.BORDER_REFLECT
    for _ in range(_ITERATIONS):
        out = np.zeros_like(img)
        for b, mirror, cx, cy, sx, sy in pieces:
            cc = cv2.sepFilter2D(img, cv2.CV_32F, cx, cy, borderType=border)
            if b == 0 or 2 * b == _N_BINS:  # phi = 0 or 90 degrees: the sine product vanishes
                out += weights[b] * cc
                continue
            ss = cv2.sepFilter2D(img, cv2.CV_32F, sx, sy, borderType=border)
            out += weights[b] * (cc - ss) + weights[mirror] * (cc + ss)
        # remove the local mean: the Gabor's small DC response would drift the pattern
        out -= cv2.blur(out, (int(2 * half + 1),) * 2, borderType=border)
        img = np.clip(out * np.float32(3.0 / (np.abs(out).mean() + 1e-6)), -1.0, 1.0)
    return img


# --------------------------------------------------------------------------- impression


def _contact_area(rs: SeedStream, r: int) -> np.ndarray:
    """Fingertip-shaped mask in [0, 1]: an egg-shaped ellipse with a ragged rim."""
    yy, xx = np.mgrid[0:r, 0:r].astype(np.float32)
    cx = r * (0.5 + rs.uniform((), -0.05, 0.05))
    cy = r * (0.52 + rs.uniform((), -0.04, 0.04))
    ax, ay = r * rs.uniform((), 0.32, 0.4), r * rs.uniform((), 0.4, 0.47)
    ang = rs.uniform((), -0.25, 0.25)
    dx, dy = xx - cx, yy - cy
    u = (np.cos(ang) * dx + np.sin(ang) * dy) / ax
    v = (-np.sin(ang) * dx + np.cos(ang) * dy) / ay
    u = u * (1.0 + 0.12 * np.clip(-v, -1, 1))  # narrower towards the tip (top)
    dist = np.sqrt(u * u + v * v) + 0.08 * _smooth_noise(rs, r, 7)
    return np.clip((1.0 - dist) / 0.05, 0.0, 1.0).astype(np.float32)


def _cracks(rs: SeedStream, r: int, mask: np.ndarray, count: int) -> np.ndarray:
    """1 where a crack (a thin white wandering line across the print) lies."""
    out = np.zeros((r, r), np.uint8)
    ys, xs = np.nonzero(mask > 0.5)
    if len(xs) == 0:
        return out.astype(np.float32)
    for _ in range(count):
        i = int(rs.integers(0, len(xs)))
        x, y = float(xs[i]), float(ys[i])
        heading = rs.uniform((), 0, 2 * np.pi)
        steps = int(rs.integers(6, 16))
        pts = [(x, y)]
        for _ in range(steps):
            heading += rs.uniform((), -0.6, 0.6)
            step = r * rs.uniform((), 0.02, 0.05)
            x, y = x + step * np.cos(heading), y + step * np.sin(heading)
            pts.append((x, y))
        thick = int(rs.integers(1, 3))
        cv2.polylines(out, [np.round(np.array(pts)).astype(np.int32)], False, 1, thick, lineType=cv2.LINE_8)
    return out.astype(np.float32)


def _whitened_outline(rs: SeedStream, mask: np.ndarray, width: float) -> np.ndarray:
    """Multiplier in [0, 1] that fades the print to white over a ragged band inside its rim."""
    r = mask.shape[0]
    dist = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    band = width * (1.0 + 0.6 * _smooth_noise(rs, r, 6))
    return np.clip((dist - band) / (0.35 * width + 1e-6), 0.0, 1.0).astype(np.float32)


def _render(rs: SeedStream, quality: str, size: int) -> np.ndarray:
    r = 2 * size
    theta = _orientation(rs, r)
    period = r / rs.uniform((), 14.0, 17.0)  # ridges per canvas width
    ridges = _grow_ridges(rs, theta, period)
    ink = 1.0 / (1.0 + np.exp(-4.0 * ridges))  # soft ridge profile
    mask = _contact_area(rs, r)
    pressure = np.clip(0.9 + 0.2 * _smooth_noise(rs, r, 5), 0.0, 1.0)
    contrast = rs.uniform((), 0.8, 0.95)

    if quality == "Q2":
        mask = mask * _whitened_outline(rs, mask, r * rs.uniform((), 0.05, 0.09))
        cracks = _cracks(rs, r, mask, int(rs.integers(3, 7)))
        ink = ink * (1.0 - cracks)
    elif quality == "Q3":
        mask = mask * _whitened_outline(rs, mask, r * rs.uniform((), 0.03, 0.07))
        # poor pressure: large pale patches; which part is pale is random
        blotch = _smooth_noise(rs, r, 4) + rs.uniform((), -0.25, 0.05)
        pressure = pressure * (0.1 + 0.9 * np.clip(0.55 - 2.0 * blotch, 0.0, 1.0))
        cracks = _cracks(rs, r, mask, int(rs.integers(2, 6)))
        ink = ink * (1.0 - cracks)
        contrast *= rs.uniform((), 0.75, 0.9)
    elif quality == "Q5":
        # only part of the finger touched the sensor: keep the side of a line
        ang = rs.uniform((), 0, 2 * np.pi)
        yy, xx = np.mgrid[0:r, 0:r].astype(np.float32)
        proj = (xx - r / 2) * np.cos(ang) + (yy - r / 2) * np.sin(ang)
        edge = r * rs.uniform((), 0.0, 0.18) + 0.06 * r * _smooth_noise(rs, r, 5)
        mask = mask * np.clip((proj - edge) / (0.04 * r), 0.0, 1.0)
        pressure = pressure * np.clip(0.85 + 0.3 * _smooth_noise(rs, r, 3), 0.0, 1.0)
    darkness = contrast * ink * mask * pressure
    img = _PAPER * (1.0 - darkness) + 8.0 * (1.0 - mask) * _smooth_noise(rs, r, 3)
    img = cv2.GaussianBlur(img.astype(np.float32), (3, 3), 0.7)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    noise_std = 3.0 if quality == "Q1" else 5.0
    img = img + noise_std * rs.normal((size, size)).astype(np.float32)
    return np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)


def make_fingerprint(seed: int, quality: str, index: int, size: int = 64) -> np.ndarray:
    """One impression: uint8 ``(size, size)``, dark ridges on a light background."""
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    return _render(_stream(seed, quality, index), quality, size)


def make_fingerprints(seed: int, quality: str, count: int, size: int = 64, start: int = 0) -> np.ndarray:
    """Impressions ``start .. start+count-1`` of one quality: uint8 ``(count, size, size)``."""
    out = np.empty((count, size, size), dtype=np.uint8)
    for i in range(count):
        out[i] = make_fingerprint(seed, quality, start + i, size)
    return out


def contact_sheet(seed: int = 0, size: int = 64, per_quality: int = 8, start: int = 0) -> np.ndarray:
    """A grid with one row per quality (Q1, Q2, Q3, Q5): thesis Figure 31."""
    rows = [make_fingerprints(seed, q, per_quality, size, start) for q in QUALITIES]
    return tile(np.concatenate(rows), cols=per_quality)
