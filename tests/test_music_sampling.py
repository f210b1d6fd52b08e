"""The shared sampler: seeded determinism, greedy, top-k, temperature bounds."""

import numpy as np
import pytest

from seedlock.core import music_events as me
from seedlock.core import music_sampling as ms
from seedlock.core.rng import SeedStream


def toy_step(event, state):
    """Deterministic logits that depend on the previous event and a counter."""
    t = state + 1
    p = np.sin(np.arange(me.NUM_PITCHES) * 0.37 + event[0] * 0.11 + t).astype(np.float32) * 3
    d = np.cos(np.arange(me.NUM_DURATIONS) * 0.53 + event[1] * 0.29 + t).astype(np.float32) * 3
    return p, d, t


def run(params, seed, length=32):
    return ms.generate(toy_step, np.array([10, 5]), 0, length, params, seed)


@pytest.mark.parametrize("params", [ms.SamplingParams("greedy"), ms.SamplingParams("temperature", 0.8), ms.SamplingParams("top_k", 1.2, 5)])
def test_same_seed_same_melody(params):
    np.testing.assert_array_equal(run(params, 7), run(params, 7))


def test_different_seeds_differ():
    params = ms.SamplingParams("temperature", 1.5)
    assert not np.array_equal(run(params, 1), run(params, 2))


def test_greedy_is_argmax():
    out = run(ms.SamplingParams("greedy"), 3, 10)
    event, state = np.array([10, 5]), 0
    for row in out:
        p, d, state = toy_step(event, state)
        assert row.tolist() == [int(np.argmax(p)), int(np.argmax(d))]
        event = row


def test_top_k_respects_k():
    logits = np.linspace(0, 1, 20)
    allowed = set(np.argsort(-logits)[:4].tolist())
    params = ms.SamplingParams("top_k", 5.0, 4)  # high temperature: all of the k get picked
    picks = {ms.sample_index(logits, params, u) for u in SeedStream(5).uniform((400,))}
    assert picks == allowed


def test_top_1_equals_greedy_and_low_temperature_concentrates():
    logits = np.array([0.1, 2.0, 1.9, -1.0])
    for u in (1e-9, 0.5, 0.999):  # (u == 0.0 exactly picks the first index of non-zero probability)
        assert ms.sample_index(logits, ms.SamplingParams("top_k", 1.0, 1), u) == 1
        assert ms.sample_index(logits, ms.SamplingParams("temperature", 0.01), u) == 1


def test_inverse_cdf_boundaries():
    logits = np.log(np.array([0.25, 0.25, 0.5]))
    params = ms.SamplingParams("temperature", 1.0)
    assert ms.sample_index(logits, params, 0.0) == 0
    assert ms.sample_index(logits, params, 0.26) == 1
    assert ms.sample_index(logits, params, 0.51) == 2
    assert ms.sample_index(logits, params, 0.9999999) == 2


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"temperature": -1.0}, {"temperature": ms.MAX_TEMPERATURE + 1}, {"top_k": 0}, {"strategy": "beam"}, {"temperature": float("nan")}])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ms.SamplingError):
        run(ms.SamplingParams(**{"strategy": "top_k", **kwargs}), 1, 4)


@pytest.mark.parametrize("length", [0, ms.MAX_LENGTH + 1])
def test_length_bounds(length):
    with pytest.raises(ms.SamplingError):
        run(ms.SamplingParams("greedy"), 1, length)


def test_two_draws_per_event_whatever_the_strategy():
    """Event k uses draws 2k, 2k+1: a prefix of a longer melody is the shorter melody."""
    params = ms.SamplingParams("top_k", 1.0, 6)
    np.testing.assert_array_equal(run(params, 9, 40)[:20], run(params, 9, 20))


def test_streaming_callback_sees_every_event():
    seen = []
    out = ms.generate(toy_step, np.array([1, 1]), 0, 5, ms.SamplingParams("greedy"), 0, on_event=lambda i, e: seen.append((i, e.tolist())))
    assert seen == [(i, row.tolist()) for i, row in enumerate(out)]


def test_prepare_primer():
    ev = np.array([[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(ms.prepare_primer(ev, 2), ev[-2:])
    np.testing.assert_array_equal(ms.prepare_primer(ev, 5), np.concatenate([ev, ev])[-5:])
    with pytest.raises(ms.SamplingError):
        ms.prepare_primer(np.zeros((0, 2), dtype=np.int64), 4)
