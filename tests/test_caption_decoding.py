"""Greedy and beam search (seedlock.core.caption_decoding) on hand-built step functions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from seedlock.core.caption_decoding import Caption, beam_search, check_params, decode, greedy_decode, take_state

END = 2
A, B, C = 4, 5, 6
V = 7


def markov_step(table: dict[int, dict[int, float]]):
    """log P(next | last token) from a table; unlisted tokens have probability 0."""
    logp = np.full((V, V), -np.inf)
    for last, row in table.items():
        for tok, p in row.items():
            logp[last, tok] = math.log(p)

    def step(prefix, state):
        return logp[prefix[:, -1]], state

    return step


# From <start>: A 0.6, B 0.4. After A: END 0.4, A 0.3, B 0.3. After B: END 0.9, A 0.1.
TRAP = {1: {A: 0.6, B: 0.4}, A: {END: 0.4, A: 0.3, B: 0.3}, B: {END: 0.9, A: 0.1}}


def test_greedy_takes_the_locally_best_word():
    [cap] = greedy_decode(markov_step(TRAP), None, 1, max_length=5)
    assert cap == Caption((A,), math.log(0.6) + math.log(0.4), True)


def test_beam_finds_the_better_caption():
    caps = beam_search(markov_step(TRAP), None, beam=2, max_length=5, n=2)
    assert caps[0].tokens == (B,) and caps[0].log_prob == pytest.approx(math.log(0.36))
    assert caps[1].tokens == (A,) and caps[1].log_prob == pytest.approx(math.log(0.24))


def test_ties_lower_token_first_then_lower_beam():
    # Every continuation ties: <end> (id 2) ranks before C (id 6); among equals, beam 0 (A) before beam 1 (B).
    table = {1: {A: 0.5, B: 0.5}, A: {C: 0.5, END: 0.5}, B: {C: 0.5, END: 0.5}, C: {END: 1.0}}
    caps = beam_search(markov_step(table), None, beam=4, max_length=5, n=4)
    assert [c.tokens for c in caps] == [(A,), (B,), (A, C), (B, C)]
    assert all(c.log_prob == pytest.approx(math.log(0.25)) for c in caps)
    [g] = greedy_decode(markov_step(table), None, 1, max_length=5)
    assert g.tokens == (A,)  # lowest id on the tie
    assert [c.tokens for c in beam_search(markov_step(table), None, beam=4, max_length=5, n=4)] == [c.tokens for c in caps]


def _random_chain(seed: int, vocab: int = 9):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (vocab, vocab))
    logits[:, :2] = -np.inf  # never <pad>/<start>
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))

    def step(prefix, state):
        return logp[prefix[:, -1]], state

    return step, logp


@pytest.mark.parametrize("seed", range(6))
def test_beam_one_equals_greedy(seed):
    step, _ = _random_chain(seed)
    assert beam_search(step, None, beam=1, max_length=8, n=1) == greedy_decode(step, None, 1, max_length=8)
    assert decode(step, None, beam=1, max_length=8) == greedy_decode(step, None, 1, max_length=8)


@pytest.mark.parametrize("seed", range(3))
def test_wide_beam_is_exhaustive_search(seed):
    # With a beam wider than every live set, beam search must return the true n best finished captions.
    step, logp = _random_chain(seed, vocab=6)  # words 3, 4, 5 (3 is <unk>, allowed), <end> = 2
    max_len = 3
    finished = []
    for length in range(0, max_len):
        for words in itertools.product([3, 4, 5], repeat=length):
            seq = [1, *words, END]
            finished.append((tuple(words), sum(logp[a, b] for a, b in zip(seq, seq[1:]))))
    finished.sort(key=lambda x: -x[1])
    caps = beam_search(step, None, beam=16, max_length=max_len, n=3)
    assert [c.tokens for c in caps] == [f[0] for f in finished[:3]]
    assert [c.log_prob for c in caps] == pytest.approx([f[1] for f in finished[:3]])


def test_state_rows_follow_their_beams():
    """Each state row holds the prefix its beam had consumed; the step checks that the row
    arrives with the right beam after every reordering (as an RNN's hidden state must)."""
    step0, _ = _random_chain(11)

    def step(prefix, state):
        assert np.array_equal(state["seen"], prefix[:, :-1]), "state rows were not reordered with their beams"
        logp, _ = step0(prefix, None)
        return logp, {"seen": prefix.copy()}

    for beam in (1, 3, 5):
        beam_search(step, {"seen": np.zeros((1, 0), np.int64)}, beam=beam, max_length=6, n=1)
    greedy_decode(step, {"seen": np.zeros((2, 0), np.int64)}, 2, max_length=6)


def test_max_length_cuts_and_prefers_finished():
    table = {1: {A: 0.9, B: 0.1}, A: {A: 1.0}, B: {END: 1.0}}
    [g] = greedy_decode(markov_step(table), None, 1, max_length=3)
    assert g == Caption((A, A, A), math.log(0.9), False)
    caps = beam_search(markov_step(table), None, beam=2, max_length=3, n=2)
    assert caps[0] == Caption((B,), math.log(0.1), True)  # finished ranks before the (likelier) cut one
    assert caps[1].tokens == (A, A, A) and not caps[1].finished


def test_greedy_batch_matches_single():
    step, _ = _random_chain(5)
    rng_state = {"x": np.zeros((3, 2))}
    batch = greedy_decode(step, rng_state, 3, max_length=6)
    single = greedy_decode(step, {"x": np.zeros((1, 2))}, 1, max_length=6)
    assert batch == single * 3


def test_take_state_structures():
    s = {"h": np.arange(6).reshape(3, 2), "t": (np.arange(3), [np.arange(3) * 2])}
    got = take_state(s, np.array([2, 2, 0]))
    assert got["h"].tolist() == [[4, 5], [4, 5], [0, 1]]
    assert got["t"][0].tolist() == [2, 2, 0] and got["t"][1][0].tolist() == [4, 4, 0]
    assert take_state(None, np.array([0])) is None


@pytest.mark.parametrize(
    "beam, max_length, n, match",
    [(0, 10, 1, "beam size"), (17, 10, 1, "beam size"), (3, 0, 1, "max length"), (3, 51, 1, "max length"),
     (3, 10, 4, "number of captions"), (3, 10, 0, "number of captions"), (True, 10, 1, "beam size")],
)  # fmt: skip
def test_check_params(beam, max_length, n, match):
    with pytest.raises(ValueError, match=match):
        check_params(beam, max_length, n)
