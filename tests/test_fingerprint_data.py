"""The embedded procedural fingerprints and the quality-folder loader."""

import cv2
import numpy as np
import pytest

from seedlock.core.errors import UserError
from seedlock.core.fingerprints import QUALITIES
from seedlock.train.data.fingerprint_folder import load_image_set, load_quality_folder, square_resize
from seedlock.train.data.fingerprints import HOLDOUT_OFFSET, contact_sheet, make_fingerprint, make_fingerprints

N = 12  # impressions per quality for the statistics below (each takes a few ms)


@pytest.fixture(scope="module")
def by_quality():
    return {q: make_fingerprints(0, q, N, 64).astype(np.float64) for q in QUALITIES}


def test_deterministic_and_distinct():
    a = make_fingerprint(3, "Q2", 5)
    assert a.dtype == np.uint8 and a.shape == (64, 64)
    np.testing.assert_array_equal(a, make_fingerprint(3, "Q2", 5))
    assert not np.array_equal(a, make_fingerprint(3, "Q2", 6))
    assert not np.array_equal(a, make_fingerprint(4, "Q2", 5))
    assert not np.array_equal(a, make_fingerprint(3, "Q1", 5))
    np.testing.assert_array_equal(make_fingerprints(3, "Q2", 2, start=5)[0], a)
    assert not np.array_equal(make_fingerprint(3, "Q2", HOLDOUT_OFFSET + 5), a)


def test_sizes_and_errors():
    assert make_fingerprint(0, "Q1", 0, size=128).shape == (128, 128)
    with pytest.raises(ValueError, match="unknown quality"):
        make_fingerprint(0, "Q4", 0)
    with pytest.raises(ValueError):
        make_fingerprint(0, "Q1", -1)
    sheet = contact_sheet(0, size=32, per_quality=3)
    assert sheet.shape == (4 * 34 + 2, 3 * 34 + 2)


def test_prints_have_ridges(by_quality):
    """Dark ridges on a light background, alternating at a fingerprint-like period."""
    q1 = by_quality["Q1"]
    assert np.median(q1) > 200  # mostly light: background and valleys
    assert ((q1 < 100).mean(axis=(1, 2)) > 0.08).all()  # plenty of dark ridge pixels in every print
    centre = q1[:, 24:40, 24:40]
    row_changes = np.abs(np.diff((centre < 128).astype(int), axis=2)).sum(axis=2).mean()
    col_changes = np.abs(np.diff((centre < 128).astype(int), axis=1)).sum(axis=1).mean()
    assert max(row_changes, col_changes) >= 2  # several ridge crossings over 16 px


def test_qualities_differ_as_in_the_thesis(by_quality):
    blank = {q: (x > 200).mean() for q, x in by_quality.items()}  # white: background, whitened or missing
    ink = {q: (x < 128).mean() for q, x in by_quality.items()}
    # Q2 cracks and a whitened outline, Q3 more whitening, Q5 only part of the print
    assert blank["Q1"] < blank["Q2"] < blank["Q3"]
    assert blank["Q5"] > blank["Q1"] + 0.1 and blank["Q5"] > blank["Q2"]
    assert ink["Q1"] > ink["Q2"] > ink["Q3"]
    assert ink["Q5"] < 0.5 * ink["Q1"]


def _write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def test_quality_folder_loader(tmp_path):
    fp = make_fingerprints(1, "Q1", 3, 64)
    _write(tmp_path / "Q1" / "a.png", fp[0])
    _write(tmp_path / "Q1" / "b.png", cv2.resize(fp[1], (80, 100)))  # non-square: padded, not cropped
    _write(tmp_path / "Q3" / "sub" / "c.bmp", cv2.cvtColor(fp[2], cv2.COLOR_GRAY2BGR))
    (tmp_path / "Q3" / "notes.txt").write_text("ignored")
    folder = load_quality_folder(tmp_path, size=32)
    assert folder.qualities == ["Q1", "Q3"] and len(folder) == 3
    assert folder.images["Q1"].shape == (2, 32, 32) and folder.images["Q1"].dtype == np.uint8
    only = load_quality_folder(tmp_path, size=32, qualities=["Q3"], limit=1)
    assert only.qualities == ["Q3"]
    with pytest.raises(UserError, match="no images for quality Q5"):
        load_quality_folder(tmp_path, qualities=["Q5"])
    with pytest.raises(UserError, match="not found"):
        load_quality_folder(tmp_path / "missing")
    with pytest.raises(UserError, match="no quality subfolders"):
        load_quality_folder(tmp_path / "Q1")


def test_image_set_loader_and_errors(tmp_path):
    fp = make_fingerprints(2, "Q2", 2, 64)
    _write(tmp_path / "x" / "a.png", fp[0])
    _write(tmp_path / "x" / "b.png", cv2.resize(fp[1], (48, 48)))
    with pytest.raises(UserError, match="different sizes"):
        load_image_set(tmp_path / "x")
    images, files = load_image_set(tmp_path / "x", size=64)
    assert images.shape == (2, 64, 64) and len(files) == 2
    (tmp_path / "x" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="broken.png"):
        load_image_set(tmp_path / "x", size=64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        load_image_set(tmp_path / "empty")


def test_square_resize_pads_with_border_grey():
    img = np.full((10, 20), 240, np.uint8)
    img[4:6, 8:12] = 0
    out = square_resize(img, 20)
    assert out.shape == (20, 20) and out[0, 0] == 240 and out[10, 10] == 0
