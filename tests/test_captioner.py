"""The captioner's five module switches, its init schemes, loaders, and step exactness."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from seedlock.core.errors import UserError
from seedlock.core.vocab import Vocabulary
from seedlock.train.captioner import (
    CELLS,
    DIRECTIONS,
    ENCODERS,
    INITS,
    Captioner,
    CaptionerConfig,
    init_tensor,
    load_encoder_weights,
    load_glove,
    step_io_names,
    step_module,
    torch_graphs,
)  # fmt: skip

torch.set_num_threads(1)
V = 12


def tiny(**kw) -> CaptionerConfig:
    base = dict(vocab_size=V, image_size=32, width=4, embed_dim=6, hidden=8, dropout=0.0)
    return CaptionerConfig(**{**base, **kw})


@pytest.mark.parametrize("encoder, cell, direction, attention", list(itertools.product(ENCODERS, CELLS, DIRECTIONS, (False, True))))
def test_every_switch_builds_and_runs(encoder, cell, direction, attention):
    torch.manual_seed(0)
    model = Captioner(tiny(encoder=encoder, cell=cell, direction=direction, attention=attention))
    images, tokens = torch.randn(2, 3, 32, 32), torch.randint(1, V, (2, 5))
    logits = model(images, tokens)
    assert logits.shape == (2, 5, V) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert model.memory_proj.weight.grad is not None
    memory = model.encode(images)
    assert memory.shape == (2, 16 if attention else 1, 8)


@pytest.mark.parametrize("cell, direction, attention", [("lstm", "vanilla", False), ("gru", "vanilla", True), ("lstm", "bi", True), ("gru", "bi", False)])
def test_decoder_step_is_exact(cell, direction, attention):
    """Teacher-forced logits at position t == the exported step fed the prefix up to t."""
    torch.manual_seed(1)
    model = Captioner(tiny(cell=cell, direction=direction, attention=attention)).eval()
    images, tokens = torch.randn(2, 3, 32, 32), torch.randint(4, V, (2, 6))
    tokens[:, 0] = 1
    with torch.no_grad():
        full = torch.log_softmax(model(images, tokens), -1)
        memory = model.encode(images)
        step = step_module(model)
        states = [torch.zeros(2, 8) for _ in model.cfg.state_names]
        for t in range(tokens.shape[1]):
            if model.cfg.bidirectional:
                logp = step(tokens[:, : t + 1], memory)
            else:
                logp, *states = step(tokens[:, t : t + 1], memory, *states)
            torch.testing.assert_close(logp, full[:, t], atol=1e-5, rtol=0)


def test_io_names():
    assert step_io_names(tiny(cell="lstm")) == (["tokens", "memory", "h", "c"], ["log_probs", "h_out", "c_out"])
    assert step_io_names(tiny(cell="gru")) == (["tokens", "memory", "h"], ["log_probs", "h_out"])
    assert step_io_names(tiny(direction="bi")) == (["tokens", "memory"], ["log_probs"])


def test_init_schemes_differ_and_have_their_scale():
    weights = {}
    for scheme in INITS:
        model = Captioner(tiny(init=scheme, hidden=64, embed_dim=64))
        model.reset_parameters(scheme, torch.Generator().manual_seed(0))
        weights[scheme] = model.rnn.weight_hh_l0.detach().clone()
    for a, b in itertools.combinations(INITS, 2):
        assert not torch.equal(weights[a], weights[b]), (a, b)
    fan_in = 64
    expect = {"random-normal": 0.05, "random-uniform": 0.05 / 3**0.5, "he-normal": (2 / fan_in) ** 0.5,
              "he-uniform": (2 / fan_in) ** 0.5, "lecun-normal": (1 / fan_in) ** 0.5, "lecun-uniform": (1 / fan_in) ** 0.5}  # fmt: skip
    for scheme, std in expect.items():
        assert float(weights[scheme].std()) == pytest.approx(std, rel=0.08), scheme
    assert float(weights["he-uniform"].abs().max()) <= (6 / fan_in) ** 0.5
    with pytest.raises(ValueError):
        init_tensor(torch.empty(3, 3), "xavier")


def test_same_generator_same_weights():
    a, b = Captioner(tiny()), Captioner(tiny())
    a.reset_parameters("he-normal", torch.Generator().manual_seed(4))
    b.reset_parameters("he-normal", torch.Generator().manual_seed(4))
    for (n, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), n


def test_bad_switch_rejected():
    with pytest.raises(ValueError, match="cell"):
        Captioner(tiny(cell="rnn"))
    with pytest.raises(ValueError, match="image_size"):
        Captioner(tiny(image_size=30))


def test_glove_loader(tmp_path):
    vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "red", "circle", "zebra"])
    f = tmp_path / "glove.txt"
    f.write_text("red 0.1 0.2 0.3\nthe 1 1 1\ncircle -1 0 1\n")
    vectors, found = load_glove(f, vocab, 3)
    assert found == 2
    assert vectors[4].tolist() == pytest.approx([0.1, 0.2, 0.3]) and vectors[6].abs().sum() == 0
    with pytest.raises(UserError, match="embed_dim"):
        load_glove(f, vocab, 4)
    with pytest.raises(UserError, match="not found"):
        load_glove(tmp_path / "nope.txt", vocab, 3)


def test_encoder_weights_loader(tmp_path):
    src = Captioner(tiny(encoder="vgg"))
    torch.save(src.cnn.state_dict(), tmp_path / "vgg.pt")
    dst = Captioner(tiny(encoder="vgg"))
    load_encoder_weights(dst, tmp_path / "vgg.pt")
    assert torch.equal(dst.cnn.features[0].weight, src.cnn.features[0].weight)
    with pytest.raises(UserError, match="do not fit"):
        load_encoder_weights(Captioner(tiny(encoder="resnet")), tmp_path / "vgg.pt")


def test_torch_graphs_decode():
    model = Captioner(tiny()).eval()
    graphs = torch_graphs(model)
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    greedy = graphs.caption(x, beam=1, max_length=6)
    beams = graphs.caption(x, beam=3, max_length=6, n=3)
    assert len(greedy) == 2 and len(beams[0]) == 3
    assert beams[0][0].log_prob >= greedy[0][0].log_prob - 1e-9 or not greedy[0][0].finished
    # Alone or in a batch: the same tokens (floats may differ in the last bits across batch sizes).
    [alone] = graphs.caption(x[:1], beam=1, max_length=6)[0]
    assert alone.tokens == greedy[0][0].tokens and alone.log_prob == pytest.approx(greedy[0][0].log_prob, abs=1e-4)
