"""DCGAN shapes (64 and 128 px, bi-activations) and the GAN losses with the thesis-3.3 regularizers."""

import math

import pytest
import torch
import torch.nn.functional as F

from seedlock.train.bi_activation import BiActivation
from seedlock.train.dcgan import (
    DCGANConfig,
    GeneratorBank,
    build_discriminator,
    build_generator,
    count_parameters,
)
from seedlock.train.fingerprint_gan import GANLoss


@pytest.fixture(autouse=True)
def one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("g_act,d_act", [("relu", "leaky-relu"), ("bi-relu", "bi-elu"), ("bi-elu", "elu")])
def test_shapes(size, g_act, d_act):
    cfg = DCGANConfig(image_size=size, latent_dim=8, g_width=2, d_width=2, g_activation=g_act, d_activation=d_act)
    g, d = build_generator(cfg), build_discriminator(cfg)
    x = g(torch.randn(3, 8))
    assert x.shape == (3, 1, size, size)
    assert x.abs().max() <= 1.0  # tanh
    assert d(x).shape == (3,)
    if g_act.startswith("bi-"):
        assert any(isinstance(m, BiActivation) for m in g.modules())
    if d_act.startswith("bi-"):
        assert any(isinstance(m, BiActivation) for m in d.modules())


def test_structure_follows_radford():
    cfg = DCGANConfig(image_size=64, latent_dim=8, g_width=4, d_width=4)
    g, d = build_generator(cfg), build_discriminator(cfg)
    convt = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in convt] == [32, 16, 8, 4, 1]  # 4x4 -> 64x64, widths halving
    assert isinstance(list(g.net)[-1], torch.nn.Tanh)
    bns = [m for m in d.net if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 3 and isinstance(d.net[1], torch.nn.LeakyReLU)  # no BN on the input layer
    w = convt[1].weight.detach()
    assert abs(float(w.mean())) < 0.01 and 0.01 < float(w.std()) < 0.03  # N(0, 0.02) init
    cfg128 = DCGANConfig(image_size=128, latent_dim=8, g_width=4, d_width=4)
    assert count_parameters(build_generator(cfg128)) > count_parameters(g)


def test_bi_activation_doubles_next_layer_inputs():
    cfg = DCGANConfig(latent_dim=8, g_width=2, d_width=2, g_activation="bi-relu", d_activation="bi-relu")
    g, d = build_generator(cfg), build_discriminator(cfg)
    convt = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.in_channels for m in convt[1:]] == [2 * m.out_channels for m in convt[:-1]]
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.in_channels for m in convs[1:]] == [2 * m.out_channels for m in convs[:-1]]


def test_config_validation():
    with pytest.raises(ValueError, match="image_size"):
        DCGANConfig(image_size=32).validate()
    with pytest.raises(ValueError, match="g_activation"):
        DCGANConfig(g_activation="leaky-relu").validate()
    with pytest.raises(ValueError, match="unknown"):
        DCGANConfig.from_dict({"image_size": 64, "depth": 3})
    assert DCGANConfig.from_dict(DCGANConfig(g_width=8).to_dict()).g_width == 8


def test_generator_bank_stacks_generators():
    cfg = DCGANConfig(latent_dim=8, g_width=2)
    bank = GeneratorBank(cfg, ["Q1", "Q2", "Q3"]).eval()
    z = torch.randn(2, 8)
    out = bank(z)
    assert out.shape == (2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(out[:, 1:2], bank.generators[1](z))
    assert GeneratorBank(cfg, ["all"]).eval()(z).shape == (2, 1, 64, 64)


LOGITS_REAL = torch.tensor([2.0, -0.5, 0.3])
LOGITS_FAKE = torch.tensor([-1.0, 0.7, 0.1])


def test_losses_match_their_definitions():
    r, f = LOGITS_REAL, LOGITS_FAKE
    d, _ = GANLoss("bce").d_loss(r, f)
    expected = -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean()
    assert float(d) == pytest.approx(float(expected), rel=1e-6)
    g, _ = GANLoss("bce").g_loss(f)
    assert float(g) == pytest.approx(float(-torch.log(torch.sigmoid(f)).mean()), rel=1e-6)
    d, _ = GANLoss("hinge").d_loss(r, f)
    assert float(d) == pytest.approx(float(F.relu(1 - r).mean() + F.relu(1 + f).mean()))
    assert float(GANLoss("hinge").g_loss(f)[0]) == pytest.approx(float(-f.mean()))
    d, _ = GANLoss("lsgan").d_loss(r, f)
    assert float(d) == pytest.approx(float(0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean()))
    assert float(GANLoss("lsgan").g_loss(f)[0]) == pytest.approx(float(0.5 * ((f - 1) ** 2).mean()))


@pytest.mark.parametrize("name", ["bce", "hinge", "lsgan"])
def test_exponential_regularization_eq5(name):
    r, f = LOGITS_REAL, LOGITS_FAKE
    plain, plain_terms = GANLoss(name).d_loss(r, f)
    assert set(plain_terms) == {"base", "total"}
    loss = GANLoss(name, exp_reg=0.5, l1=0.25, l2=0.1)
    total, terms = loss.d_loss(r, f)
    p = (lambda x: x) if name == "lsgan" else torch.sigmoid
    err = torch.cat([1 - p(r), 0 - p(f)])
    l1, l2 = float(err.abs().mean()), float((err**2).mean())
    assert terms["l1"] == pytest.approx(l1, rel=1e-6) and terms["l2"] == pytest.approx(l2, rel=1e-6)
    assert terms["exp"] == pytest.approx(l1 * math.exp(-l2), rel=1e-6)  # mean|e| * exp(-mean e^2)
    assert terms["exp"] >= 0
    assert float(total) == pytest.approx(float(plain) + 0.25 * l1 + 0.1 * l2 + 0.5 * terms["exp"], rel=1e-6)
    g_total, g_terms = loss.g_loss(f)
    e = 1 - p(f)
    assert g_terms["exp"] == pytest.approx(float(e.abs().mean() * torch.exp(-(e**2).mean())), rel=1e-6)


def test_regularized_loss_backpropagates():
    f = LOGITS_FAKE.clone().requires_grad_(True)
    total, _ = GANLoss("bce", exp_reg=1.0).g_loss(f)
    total.backward()
    assert f.grad is not None and torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown GAN loss"):
        GANLoss("wasserstein")
    with pytest.raises(ValueError, match=">= 0"):
        GANLoss("bce", exp_reg=-1)
