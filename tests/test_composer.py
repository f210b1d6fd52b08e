"""The composer model: shapes, encodings, norms, and step decoding == teacher forcing."""

import numpy as np
import pytest
import torch

from seedlock.core import music_events as me
from seedlock.train.composer import Composer, ComposerConfig, StepNorm, torch_initial_state, torch_step

torch.set_num_threads(1)


def tokens(b, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, me.NUM_PITCHES, (b, t), generator=g), torch.randint(0, me.NUM_DURATIONS, (b, t), generator=g)], -1)


VARIANTS = [
    dict(),
    dict(decoder="vanilla"),
    dict(cell="lstm", norm="group"),
    dict(encoding="whole", bidirectional=False, norm="instance"),
    dict(num_genres=0),
]


@pytest.mark.parametrize("overrides", VARIANTS)
def test_step_decoding_matches_teacher_forcing(overrides):
    torch.manual_seed(0)
    cfg = ComposerConfig(**{"window": 6, "horizon": 5, "hidden": 16, "norm_channels": 4, "norm_groups": 2, "num_genres": 3, **overrides})
    model = Composer(cfg).eval()
    src, prev, genre = tokens(2, 6), tokens(2, 5, 1), torch.tensor([0, 2])
    with torch.no_grad():
        p_all, d_all = model(src, prev, genre)
        assert p_all.shape == (2, 5, me.NUM_PITCHES) and d_all.shape == (2, 5, me.NUM_DURATIONS)
        h, c, memory = model.encode(src, genre)
        for t in range(5):
            p, d, h, c = model.decode(prev[:, t : t + 1], genre, h, c, memory)
            torch.testing.assert_close(p[:, 0], p_all[:, t], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(d[:, 0], d_all[:, t], atol=1e-5, rtol=1e-5)


def test_input_encodings():
    onehot = Composer(ComposerConfig(hidden=16, num_genres=2)).embed
    assert onehot.size == me.NUM_PITCHES + me.NUM_DURATIONS + 2
    x = onehot(torch.tensor([[[3, 4]]]), torch.tensor([1]))
    assert x.sum() == 3 and x[0, 0, 3] == 1 and x[0, 0, me.NUM_PITCHES + 4] == 1 and x[0, 0, -1] == 1
    whole = Composer(ComposerConfig(hidden=16, encoding="whole")).embed
    assert whole.size == 2
    y = whole(torch.tensor([[[me.NUM_PITCHES - 1, me.DURATIONS.index(8.0)]]]), torch.tensor([0]))
    torch.testing.assert_close(y, torch.ones(1, 1, 2))


@pytest.mark.parametrize("kind", ["instance", "group", "ensemble"])
def test_step_norm_is_per_step(kind):
    norm = StepNorm(kind, 16, 4, 2)
    x = torch.randn(3, 7, 16)
    full = norm(x)
    torch.testing.assert_close(norm(x[:, 2:3]), full[:, 2:3])
    assert full.shape == x.shape
    assert abs(float(full.detach().mean())) < 0.2


def test_config_validation():
    with pytest.raises(ValueError):
        ComposerConfig(cell="sru")
    with pytest.raises(ValueError):
        ComposerConfig(hidden=20, norm_channels=8)
    assert ComposerConfig.from_dict({**ComposerConfig(hidden=32).to_dict(), "extra": 1}).hidden == 32


def test_greedy_equals_shared_sampler_greedy():
    from seedlock.core import music_sampling as ms

    torch.manual_seed(1)
    model = Composer(ComposerConfig(window=6, horizon=4, hidden=16, norm_channels=4, norm_groups=2, num_genres=2)).eval()
    src = tokens(1, 6, 3)
    batched = model.greedy(src, torch.tensor([1]), 7)[0].numpy()
    state = torch_initial_state(model, src[0].numpy(), 1)
    shared = ms.generate(torch_step(model, 1), src[0, -1].numpy(), state, 7, ms.SamplingParams("greedy"), seed=0)
    np.testing.assert_array_equal(batched, shared)
