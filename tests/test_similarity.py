"""The four similarity measures (seedlock.core.similarity) against slow, obvious
reference implementations, plus the shared fingerprint helpers of seedlock.core.
Speed is measured by `seedlock bench similarity`, not here."""

import numpy as np
import pytest

from seedlock.core import fingerprints as fp
from seedlock.core.rng import SeedStream
from seedlock.core.similarity import (
    BINARIZE_THRESHOLD,
    READINGS,
    binarize,
    compare_sets,
    format_table,
    histograms,
    image_stats,
    pairwise,
)


def random_set(seed: int, n: int, side: int = 12) -> np.ndarray:
    """Random grey images with varied ink density, one blank (all white) image included."""
    rs = SeedStream(seed)
    base = (rs.uniform((n, side, side)) * 256).astype(np.float64)
    bias = rs.uniform((n, 1, 1), -80, 80)
    images = np.clip(base + bias, 0, 255).astype(np.uint8)
    images[0] = 255
    return images


def reference(a: np.ndarray, b: np.ndarray, threshold: int = 128):
    """Pair by pair, the way the thesis describes it."""
    ham, iou, pear = [], [], []
    for x in a:
        for y in b:
            bx, by = x < threshold, y < threshold
            ham.append(int(np.sum(bx != by)))
            union = np.sum(bx | by)
            iou.append(1.0 if union == 0 else np.sum(bx & by) / union)
            hx = np.histogram(x, bins=256, range=(0, 256))[0]
            hy = np.histogram(y, bins=256, range=(0, 256))[0]
            pear.append(np.corrcoef(hx, hy)[0, 1])
    return np.array(ham, float), np.array(iou, float), np.array(pear, float)


def test_pairwise_and_summary_match_reference():
    a, b = random_set(1, 7), random_set(2, 5)
    ham, iou, pear = reference(a, b)
    mats = pairwise(a, b)
    np.testing.assert_allclose(mats["hamming"].ravel(), ham, atol=0)
    np.testing.assert_allclose(mats["iou"].ravel(), iou, rtol=1e-12)
    np.testing.assert_allclose(mats["pearson"].ravel(), pear, rtol=1e-9, atol=1e-12)
    r = compare_sets(a, b)
    assert r["pairs"] == 35 and r["n_a"] == 7 and r["n_b"] == 5 and r["pixels"] == 144
    assert r["hamming"]["mean"] == pytest.approx(ham.mean(), rel=1e-12)
    assert r["hamming"]["std"] == pytest.approx(ham.std(), rel=1e-9)
    assert r["hamming"]["mean_fraction"] == pytest.approx(ham.mean() / 144)
    assert r["iou"]["mean"] == pytest.approx(iou.mean(), rel=1e-12)
    assert r["iou"]["std"] == pytest.approx(iou.std(), rel=1e-9)
    assert r["pearson"]["mean"] == pytest.approx(pear.mean(), rel=1e-9)
    assert r["pearson"]["std"] == pytest.approx(pear.std(), rel=1e-7)
    ms = r["mean_std"]["a"]
    per_mean = a.reshape(7, -1).mean(axis=1)
    per_std = a.reshape(7, -1).std(axis=1)
    assert ms["mean_of_means"] == pytest.approx(per_mean.mean())
    assert ms["mean_of_stds"] == pytest.approx(per_std.mean())
    assert ms["std_of_means"] == pytest.approx(per_mean.std())


def test_blocking_does_not_change_results():
    a, b = random_set(3, 9), random_set(4, 6)
    whole, blocked = compare_sets(a, b), compare_sets(a, b, block=2)
    for key in ("hamming", "iou", "pearson"):
        for stat in ("mean", "std"):
            assert blocked[key][stat] == pytest.approx(whole[key][stat], rel=1e-12, abs=1e-15)


def test_identical_images_give_perfect_scores():
    img = random_set(5, 2)[1:]  # one non-blank image
    r = compare_sets(img, img)
    assert r["hamming"]["mean"] == 0 and r["iou"]["mean"] == 1.0
    assert r["pearson"]["mean"] == pytest.approx(1.0)
    copies = np.repeat(img, 4, axis=0)
    r = compare_sets(copies, copies)
    assert r["hamming"]["mean"] == 0 and r["hamming"]["std"] == 0
    assert r["iou"]["mean"] == 1.0 and r["pearson"]["mean"] == pytest.approx(1.0)
    assert r["mean_std"]["centroid_distance"] == 0


def test_two_blank_images_count_as_iou_one():
    blank = np.full((1, 8, 8), 255, np.uint8)
    assert compare_sets(blank, blank)["iou"]["mean"] == 1.0
    ink = np.zeros((1, 8, 8), np.uint8)
    r = compare_sets(blank, ink)
    assert r["iou"]["mean"] == 0.0 and r["hamming"]["mean"] == 64


def test_binarization_rule_is_a_fixed_threshold():
    img = np.array([[[0, 127, 128, 255]]], np.uint8)
    assert binarize(img).tolist() == [[[True, True, False, False]]]
    assert BINARIZE_THRESHOLD == 128
    assert "128" in compare_sets(img, img)["binarization"]
    # a different threshold moves the boundary
    assert binarize(img, 200).tolist() == [[[True, True, True, False]]]
    r = compare_sets(np.array([[[100]]], np.uint8), np.array([[[150]]], np.uint8), threshold=160)
    assert r["hamming"]["mean"] == 0


def test_histograms_and_image_stats():
    a = random_set(6, 4)
    h = histograms(a)
    assert h.shape == (4, 256) and (h.sum(axis=1) == 144).all()
    np.testing.assert_array_equal(h[2], np.histogram(a[2], bins=256, range=(0, 256))[0])
    h16 = histograms(a, bins=16)
    np.testing.assert_array_equal(h16[2], np.histogram(a[2], bins=16, range=(0, 256))[0])
    m, s = image_stats(a)
    np.testing.assert_allclose(m, a.reshape(4, -1).mean(1))
    np.testing.assert_allclose(s, a.reshape(4, -1).std(1))


def test_input_errors():
    a = random_set(7, 3, side=8)
    with pytest.raises(ValueError, match="different image sizes"):
        compare_sets(a, random_set(8, 3, side=10))
    with pytest.raises(ValueError, match="uint8"):
        compare_sets(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="non-empty"):
        compare_sets(a[:0], a)


def test_format_table_lists_each_comparison():
    a, b = random_set(9, 3), random_set(10, 3)
    text = format_table({"I-I": compare_sets(a, a), "I-II": compare_sets(a, b)})
    assert "I-I" in text and "I-II" in text and "Mean Hamming distance" in text and "±" in text


# --------------------------------------------------------------------------- seedlock.core.fingerprints


def test_latents_are_the_seeded_stream():
    z = fp.latents(5, 3, 7)
    assert z.dtype == np.float32 and z.shape == (3, 7)
    np.testing.assert_array_equal(z, SeedStream(5, fp.LATENT_STREAM).normal((3, 7)).astype(np.float32))
    np.testing.assert_array_equal(z, fp.latents(5, 3, 7))
    assert not np.array_equal(z, fp.latents(6, 3, 7))
    assert fp.latents(5, 0, 7).shape == (0, 7)


def test_to_uint8_rounding_and_clipping():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 3.0, -1.0 + 1 / 127.5], np.float32)
    assert fp.to_uint8(x).tolist() == [0, 0, 128, 255, 255, 1]
    back = fp.to_uint8(fp.from_uint8(np.arange(256, dtype=np.uint8)))
    np.testing.assert_array_equal(back, np.arange(256))


def test_generator_index_and_selection():
    per_q = {"generators": ["Q1", "Q2", "Q3", "Q5"]}
    assert fp.generator_index(per_q, "Q3") == 2
    with pytest.raises(ValueError, match="choose a quality"):
        fp.generator_index(per_q, None)
    with pytest.raises(ValueError, match="unknown quality"):
        fp.generator_index(per_q, "Q4")
    assert fp.generator_index({"generators": ["all"]}, "Q2") == 0
    out = np.arange(2 * 4 * 3 * 3, dtype=np.float32).reshape(2, 4, 3, 3)
    np.testing.assert_array_equal(fp.select_generator(out, 1), out[:, 1])
    with pytest.raises(ValueError):
        fp.select_generator(out, 4)


def test_gray_conversion_and_tiles():
    gray = (SeedStream(1).uniform((5, 6)) * 256).astype(np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(fp.to_gray(rgb), gray)
    np.testing.assert_array_equal(fp.to_gray(gray), gray)
    assert fp.stack_gray([rgb, gray]).shape == (2, 5, 6)
    with pytest.raises(ValueError, match="one size"):
        fp.stack_gray([gray, gray[:4]])
    grid = fp.tile(np.zeros((5, 4, 4), np.uint8), cols=3, pad=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1)


# --------------------------------------------------------------------------- thesis readings (issue 15)


def reference_readings(a: np.ndarray, b: np.ndarray, threshold: int = 128) -> dict[str, np.ndarray]:
    """Pair by pair, each reading of the thesis's IoU and MHD written out plainly."""
    out: dict[str, list[float]] = {"iou_with_background": [], "iou_background": [], "iou_pooled": [], "hamming_over_union": []}
    for x in a:
        for y in b:
            ix, iy = x < threshold, y < threshold
            bx, by = ~ix, ~iy
            ink_union, bg_union = np.sum(ix | iy), np.sum(bx | by)
            ink_iou = 1.0 if ink_union == 0 else np.sum(ix & iy) / ink_union
            bg_iou = 1.0 if bg_union == 0 else np.sum(bx & by) / bg_union
            ham = np.sum(ix != iy)
            out["iou_background"].append(bg_iou)
            out["iou_with_background"].append((ink_iou + bg_iou) / 2)
            # pooled: intersections of both classes over unions of both classes
            out["iou_pooled"].append((np.sum(ix & iy) + np.sum(bx & by)) / (ink_union + bg_union))
            out["hamming_over_union"].append(0.0 if ink_union == 0 else ham / ink_union)
    return {k: np.array(v, float) for k, v in out.items()}


def test_readings_match_reference_pair_by_pair():
    a, b = random_set(11, 6), random_set(12, 4)
    ref = reference_readings(a, b)
    mats = pairwise(a, b, with_readings=True)
    for name in READINGS:
        np.testing.assert_allclose(mats[name].ravel(), ref[name], rtol=1e-12, atol=1e-15, err_msg=name)
    np.testing.assert_allclose(mats["hamming_over_union"], 1.0 - mats["iou"], rtol=1e-12, atol=1e-15)
    r = compare_sets(a, b, with_readings=True, block=4)
    for name in READINGS:
        assert r["readings"][name]["mean"] == pytest.approx(ref[name].mean(), rel=1e-12)
        assert r["readings"][name]["std"] == pytest.approx(ref[name].std(), rel=1e-7, abs=1e-12)


def test_readings_leave_the_existing_measures_alone():
    a, b = random_set(13, 5), random_set(14, 5)
    plain, more = compare_sets(a, b), compare_sets(a, b, with_readings=True)
    assert "readings" not in plain and set(more["readings"]) == set(READINGS)
    assert {k: v for k, v in more.items() if k != "readings"} == plain
    assert set(pairwise(a, b)) == {"hamming", "iou", "pearson"}


def test_readings_edge_cases():
    blank = np.full((1, 4, 4), 255, np.uint8)
    ink = np.zeros((1, 4, 4), np.uint8)
    r = pairwise(blank, blank, with_readings=True)  # no ink anywhere: everything agrees
    assert r["iou_with_background"][0, 0] == 1.0 and r["hamming_over_union"][0, 0] == 0.0 and r["iou_pooled"][0, 0] == 1.0
    r = pairwise(ink, ink, with_readings=True)  # all ink: no background to compare, counts as agreeing
    assert r["iou_background"][0, 0] == 1.0 and r["iou_with_background"][0, 0] == 1.0
    r = pairwise(blank, ink, with_readings=True)  # opposite images
    assert r["iou_with_background"][0, 0] == 0.0 and r["hamming_over_union"][0, 0] == 1.0 and r["iou_pooled"][0, 0] == 0.0
    half = np.full((1, 4, 4), 255, np.uint8)
    half[0, :2] = 0  # top half ink
    r = pairwise(half, half[:, ::-1], with_readings=True)  # ink halves do not overlap
    assert r["iou"][0, 0] == 0.0 and r["iou_background"][0, 0] == 0.0 and r["hamming"][0, 0] == 16
