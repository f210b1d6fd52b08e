"""The composition measures, checked against hand-computed values."""

import numpy as np
import pytest

from seedlock.core import music_events as me
from seedlock.core import music_metrics as mm


def test_top1_error():
    logits = np.zeros((1, 4, 3))
    logits[0, np.arange(4), [0, 1, 2, 0]] = 1.0
    assert mm.top1_error(logits, np.array([[0, 1, 1, 1]])) == pytest.approx(0.5)


def test_pitch_values_carry_rests():
    toks = np.array([[me.REST, me.pitch_token(60), me.REST, me.pitch_token(64)], [me.REST] * 4])
    np.testing.assert_array_equal(mm.pitch_values(toks), [[60, 60, 60, 64], [0, 0, 0, 0]])


def test_duration_values():
    np.testing.assert_allclose(mm.duration_values([[me.duration_token(0.5), me.duration_token(2.0)]]), [[0.5, 2.0]])


def test_total_error_sums_per_window_then_averages():
    g = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    y = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    assert mm.total_error(g, y) == pytest.approx((3.0 + 3.0) / 2)


def test_cosine_similarity():
    assert mm.cosine_similarity([[1.0, 0.0]], [[0.0, 1.0]]) == pytest.approx(0.0)
    assert mm.cosine_similarity([[2.0, 2.0]], [[1.0, 1.0]]) == pytest.approx(1.0)
    assert mm.cosine_similarity([[0.0, 0.0]], [[0.0, 0.0]]) == 1.0
    assert mm.cosine_similarity([[0.0, 0.0]], [[1.0, 0.0]]) == 0.0


def test_pearson():
    y = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert mm.pearson(2 * y + 5, y) == pytest.approx(1.0)
    assert mm.pearson(-y, y) == pytest.approx(-1.0)
    assert mm.pearson(np.ones((1, 4)), y) == 0.0  # constant: defined as 0
    a = np.array([[1.0, 3.0, 2.0, 5.0]])
    assert mm.pearson(a, y) == pytest.approx(np.corrcoef(a[0], y[0])[0, 1])


def test_compare_sequences_identical_and_shapes():
    rng = np.random.default_rng(0)
    ev = np.stack([rng.integers(1, me.NUM_PITCHES, (3, 8)), rng.integers(0, me.NUM_DURATIONS, (3, 8))], -1)
    out = mm.compare_sequences(ev, ev)
    for name in ("pitch", "duration"):
        assert out[name]["total_error"] == 0.0
        assert out[name]["cosine"] == pytest.approx(1.0)
        assert out[name]["generated_mean"] == out[name]["true_mean"]
        assert out[name]["generated_std"] == out[name]["true_std"]
    with pytest.raises(ValueError):
        mm.compare_sequences(ev, ev[:, :4])


def test_describe():
    assert mm.describe([1.0, 3.0]) == {"mean": 2.0, "std": 1.0}
