"""The one melody sampler: greedy, temperature and top-k, seeded.

Written once in numpy and driven by a ``step`` callable, so the torch
reference, the ONNX Runtime path (export check, server) all run the same
code::

    step(event: np.ndarray[int64, (2,)], state) -> (pitch_logits, duration_logits, new_state)

``event`` is the previous event (pitch token, duration token); ``state`` is
whatever the caller's model needs (recurrent state, encoder memory) and is
passed through untouched.

Randomness: every generated event draws exactly two uniforms from
``SeedStream(seed, stream)`` — pitch first, then duration — whatever the
strategy, so event k always uses draws 2k and 2k+1.

Why float64 softmax + inverse CDF: torch and ONNX Runtime logits differ by
~1e-6. Turning them into float64 probabilities and picking the first index
whose cumulative probability exceeds ``u`` means such a difference can only
change the pick when ``u`` lies within ~1e-6 of a CDF boundary (probability
~1e-6 per draw, ~1e-4 per 96-event melody), or when two logits tie exactly
for greedy/top-k ranking (ties break to the lowest index). That is the
residual risk of "same seed, same melody" across runtimes; on one runtime the
result is exactly reproducible.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from seedlock.core import music_events as me
from seedlock.core.rng import SeedStream

STRATEGIES = ("greedy", "temperature", "top_k")
# The ranges of a Compose request's numbers: the server (INVALID_ARGUMENT),
# the client library and ``seedlock client compose`` all check these.
#
# The temperature floor: logits come from float32 graphs (|z| <= 3.4e38), and
# z / T must stay a finite float64 or the softmax is inf - inf = NaN, whose
# CDF picks the last index for every draw (the highest pitch, the longest
# duration: what 5e-324 gave). Any T >= 1e-3 keeps z / T finite for every
# float32 logit. Below it nothing musical is lost: at T = 1e-3 a logit 0.03
# under the best has probability e^-30 ~ 1e-13, so sampling is already greedy,
# except between near-tied logits, which a lower T would pick between by
# float rounding noise (runtimes differ by ~1e-6). Use strategy greedy for the
# most likely event.
MIN_TEMPERATURE = 1e-3
MAX_TEMPERATURE = 10.0
MIN_TOP_K = 1
MAX_TOP_K = 1024  # k over a vocabulary's size samples from all of it
MAX_LENGTH = 1024  # events per request; a model's manifest may set a lower limit
MAX_SEED = 2**64 - 1  # uint64 on the wire

StepFn = Callable[[np.ndarray, Any], tuple[np.ndarray, np.ndarray, Any]]


class SamplingError(ValueError):
    """Sampling parameters out of range (the server maps it to INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class SamplingParams:
    """``greedy``: argmax. ``temperature``: sample softmax(logits / T).
    ``top_k``: sample among the k largest logits of softmax(logits / T)."""

    strategy: str = "top_k"
    temperature: float = 1.0
    top_k: int = 8

    def validate(self) -> "SamplingParams":
        check_params(strategy=self.strategy, temperature=self.temperature,
                     top_k=self.top_k if self.strategy == "top_k" else None)
        return self


def _quoted(text: str, limit: int = 32) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text)} characters)"


def _integer(name: str, value: Any) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise SamplingError(f"{name} must be an integer, got {type(value).__name__}") from None


def check_params(
    strategy: str | None = None, temperature: float | None = None, top_k: int | None = None,
    length: int | None = None, seed: int | None = None, length_limit: int = MAX_LENGTH,
) -> None:
    """The one check of a Compose request's numbers (None: not given): SamplingError
    naming the parameter and its range. ``length_limit``: the model's own limit."""
    if strategy is not None and strategy not in STRATEGIES:
        raise SamplingError(f"unknown sampling strategy {_quoted(str(strategy))}; use one of {', '.join(STRATEGIES)}")
    if temperature is not None:
        try:
            t = float(temperature)
        except (TypeError, ValueError):
            raise SamplingError(f"temperature must be a number, got {type(temperature).__name__}") from None
        if not (math.isfinite(t) and MIN_TEMPERATURE <= t <= MAX_TEMPERATURE):
            hint = "; for the most likely event use strategy greedy" if t < MIN_TEMPERATURE else ""
            raise SamplingError(f"temperature must be in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}], got {t!r}{hint}")
    if top_k is not None and not MIN_TOP_K <= _integer("top_k", top_k) <= MAX_TOP_K:
        raise SamplingError(f"top_k must be in [{MIN_TOP_K}, {MAX_TOP_K}], got {top_k}")
    if length is not None and not 1 <= _integer("length", length) <= length_limit:
        raise SamplingError(f"length must be 1 to {length_limit} events, got {length}")
    if seed is not None and not 0 <= _integer("seed", seed) <= MAX_SEED:
        raise SamplingError(f"seed must be in [0, 2**64 - 1], got {seed}")


def softmax64(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64).ravel() / float(temperature)
    z = z - z.max()
    p = np.exp(z)
    return p / p.sum()


def sample_index(logits: np.ndarray, params: SamplingParams, u: float) -> int:
    """One index from ``logits`` with uniform ``u`` in [0, 1)."""
    z = np.asarray(logits, dtype=np.float64).ravel()
    if params.strategy == "greedy":
        return int(np.argmax(z))  # first maximum on ties
    support = np.arange(z.size)
    if params.strategy == "top_k":
        k = min(int(params.top_k), z.size)
        support = np.sort(np.argsort(-z, kind="stable")[:k])  # k largest, kept in index order
    p = softmax64(z[support], params.temperature)
    cdf = np.cumsum(p)
    i = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    return int(support[min(i, support.size - 1)])


def generate(
    step: StepFn,
    first_event: np.ndarray,
    state: Any,
    length: int,
    params: SamplingParams,
    seed: int,
    stream: int = 0,
    on_event: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """``length`` events continuing after ``first_event`` (the primer's last event).

    ``on_event(i, event)`` is called as each event is chosen (for streaming).
    """
    params.validate()
    check_params(length=length)
    rng = SeedStream(int(seed), int(stream))
    event = np.asarray(first_event, dtype=np.int64).reshape(2)
    out = np.zeros((int(length), 2), dtype=np.int64)
    for i in range(int(length)):
        pitch_logits, duration_logits, state = step(event, state)
        u = rng.uniform((2,))
        event = np.array(
            [sample_index(pitch_logits, params, float(u[0])), sample_index(duration_logits, params, float(u[1]))],
            dtype=np.int64,
        )
        out[i] = event
        if on_event is not None:
            on_event(i, event)
    return out


def prepare_primer(events: np.ndarray, window: int) -> np.ndarray:
    """Exactly ``window`` events for the encoder: the last ``window`` of the primer,
    or a short primer repeated end to end (repetition is the most common way a
    melody continues, and the encoder was only trained on full windows)."""
    ev = me.validate(events)
    if len(ev) == 0:
        raise SamplingError("the primer holds no events")
    reps = -(-window // len(ev))
    return np.concatenate([ev] * reps)[-window:]
