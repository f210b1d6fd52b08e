"""seedlock.core.bleu against nltk's corpus_bleu (an independent implementation)."""

from __future__ import annotations

import pytest

from seedlock.core.bleu import corpus_bleu

nltk_bleu = pytest.importorskip("nltk.translate.bleu_score", reason="nltk is the independent BLEU implementation")

WEIGHTS = [(1.0,), (0.5, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.25, 0.25, 0.25, 0.25)]


def _nltk(refs, hyps, smoothing=None):
    return [nltk_bleu.corpus_bleu(refs, hyps, weights=w, smoothing_function=smoothing) for w in WEIGHTS]


def _ours(refs, hyps, smoothing="none"):
    out = corpus_bleu(refs, hyps, smoothing=smoothing)
    return [out[f"bleu{n}"] for n in range(1, 5)]


def _split(cases):
    return [[r.split() for r in refs] for refs, _ in cases], [h.split() for _, h in cases]


CASES = {
    "papineni example": [
        (
            [
                "it is a guide to action that ensures that the military will forever heed party commands",
                "it is the guiding principle which guarantees the military forces always being under the command of the party",
                "it is the practical guide for the army always to heed the directions of the party",
            ],
            "it is a guide to action which ensures that the military always obeys the commands of the party",
        ),
        (
            ["he was interested in world history because he read the book"],
            "he read the book because he was interested in world history",
        ),
    ],
    "captions, several refs": [
        (["a red circle left of a blue square", "a blue square to the right of a red circle"], "a red circle to the left of a blue square"),
        (["two dogs play in the snow", "dogs running in snow", "a dog and another dog in the snow"], "a dog runs in the snow"),
        (["a man rides a bike on a road", "a cyclist on the road"], "a man is riding a bike down the road"),
    ],
    "brevity penalty (short hyps)": [
        (["the cat sat on the mat today", "there is a cat sitting on the mat"], "the cat on the mat"),
        (["a small green triangle above a yellow square"], "a green triangle above a"),
    ],
    "clipping (repeated words)": [
        (["the cat is on the mat", "there is a cat on the mat"], "the the the the the the the"),
        (["a a b c d"], "a a a a b c d"),
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_nltk_unsmoothed(name):
    refs, hyps = _split(CASES[name])
    for ours, theirs in zip(_ours(refs, hyps), _nltk(refs, hyps)):
        assert ours == pytest.approx(theirs, abs=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_nltk_epsilon_smoothing(name):
    refs, hyps = _split(CASES[name])
    method1 = nltk_bleu.SmoothingFunction().method1
    for ours, theirs in zip(_ours(refs, hyps, "epsilon"), _nltk(refs, hyps, method1)):
        assert ours == pytest.approx(theirs, abs=1e-12)


def test_zero_higher_order_precision_gives_zero_without_smoothing():
    refs, hyps = [[["a", "b", "c", "d"]]], [["d", "c", "b", "a"]]
    out = corpus_bleu(refs, hyps)
    assert out["bleu1"] == 1.0 and out["bleu2"] == 0.0 and out["bleu4"] == 0.0
    assert corpus_bleu(refs, hyps, smoothing="epsilon")["bleu2"] > 0


def test_perfect_and_empty():
    refs = [[["a", "red", "circle", "above", "a", "square"]]]
    assert corpus_bleu(refs, [refs[0][0]])["bleu4"] == pytest.approx(1.0)
    out = corpus_bleu(refs, [[]])
    assert out["bleu1"] == 0.0 and out["brevity_penalty"] == 0.0


def test_short_hypothesis_counts_no_ngrams():
    # Papineni: a 2-word hypothesis has no 3-grams (nltk counts one); bleu2 is unaffected.
    refs, hyps = [[["a", "b", "c"]], [["x", "y", "z", "w"]]], [["a", "b"], ["x", "y", "z", "w"]]
    out = corpus_bleu(refs, hyps)
    assert out["bleu3"] == pytest.approx(out["brevity_penalty"])  # p1 = p2 = p3 = 1
    assert out["bleu2"] == pytest.approx(_nltk(refs, hyps)[1])


def test_bad_arguments():
    with pytest.raises(ValueError):
        corpus_bleu([[["a"]]], [["a"], ["b"]])
    with pytest.raises(ValueError):
        corpus_bleu([[["a"]]], [["a"]], smoothing="add-one")
    with pytest.raises(ValueError):
        corpus_bleu([[]], [["a"]])
