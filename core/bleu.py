"""Corpus-level BLEU-1..4 (Papineni et al., 2002), numpy/stdlib only.

BLEU-N is the cumulative score: the brevity penalty times the geometric mean
of the modified n-gram precisions p_1..p_N with uniform weights 1/N. At corpus
level the clipped n-gram matches and the hypothesis n-gram counts are summed
over all sentences before dividing (not an average of sentence scores), and
the reference length is, per sentence, the reference length closest to the
hypothesis length (ties: the shorter), as in the paper and in nltk.

Smoothing (the paper has none):

* ``"none"``: a zero precision at any order up to N makes BLEU-N exactly 0.
* ``"epsilon"``: a zero match count is replaced by 0.1 (nltk's ``method1``),
  so short corpora give small non-zero scores.

One deliberate difference from nltk: nltk counts a hypothesis shorter than n
words as 1 n-gram in the denominator; we count 0, as the paper does. The two
agree whenever every hypothesis has at least N words.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

SMOOTHING = ("none", "epsilon")
EPSILON = 0.1


def _ngrams(words: Sequence[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def corpus_bleu(
    references: Sequence[Sequence[Sequence[str]]],
    hypotheses: Sequence[Sequence[str]],
    max_n: int = 4,
    smoothing: str = "none",
) -> dict[str, float]:
    """BLEU-1..``max_n`` of tokenized ``hypotheses`` against their ``references``.

    ``references[i]`` is the list of reference captions (each a list of words)
    for ``hypotheses[i]``. Returns ``{"bleu1": .., ..., "bleu{max_n}": ..}``
    plus ``"brevity_penalty"``, ``"hyp_length"`` and ``"ref_length"``.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference sets for {len(hypotheses)} hypotheses")
    if smoothing not in SMOOTHING:
        raise ValueError(f"smoothing must be one of {SMOOTHING}, got {smoothing!r}")
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    matches = [0] * (max_n + 1)
    totals = [0] * (max_n + 1)
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        if not refs:
            raise ValueError("every hypothesis needs at least one reference")
        hyp = list(hyp)
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            if not counts:
                continue
            best: Counter = Counter()
            for ref in refs:
                best |= _ngrams(list(ref), n)  # max count of each n-gram over references
            matches[n] += sum(min(c, best[g]) for g, c in counts.items())
            totals[n] += sum(counts.values())
        hyp_len += len(hyp)
        ref_len += min((len(r) for r in refs), key=lambda r: (abs(r - len(hyp)), r))

    if hyp_len == 0:
        bp = 0.0
    elif hyp_len < ref_len:
        bp = math.exp(1.0 - ref_len / hyp_len)
    else:
        bp = 1.0
    log_p = []
    for n in range(1, max_n + 1):
        m, t = matches[n], totals[n]
        if m == 0 and smoothing == "epsilon" and t > 0 and matches[1] > 0:
            m = EPSILON
        log_p.append(math.log(m / t) if m > 0 and t > 0 else -math.inf)
    out: dict[str, float] = {}
    for n in range(1, max_n + 1):
        if bp == 0.0 or any(math.isinf(x) for x in log_p[:n]):
            out[f"bleu{n}"] = 0.0
        else:
            out[f"bleu{n}"] = bp * math.exp(math.fsum(log_p[:n]) / n)
    out.update(brevity_penalty=bp, hyp_length=float(hyp_len), ref_length=float(ref_len))
    return out
