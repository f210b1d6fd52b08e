import itertools

import pytest
import torch

from seedlock.train.bi_activation import BiActivation
from seedlock.train.unet import NORMS, EnsembleNorm, UNet, UNetConfig, unet_bn, unet_ensemble, unet_plain

torch.set_num_threads(1)


@pytest.mark.parametrize("activation,norm", itertools.product(["relu", "elu", "bi-relu", "bi-elu"], NORMS))
def test_every_activation_and_norm_gives_logits_of_input_size(activation, norm):
    torch.manual_seed(0)
    model = UNet(UNetConfig(num_classes=5, width=4, depth=2, activation=activation, norm=norm, groups=2))
    x = torch.randn(2, 3, 16, 24)
    out = model(x)
    assert out.shape == (2, 5, 16, 24)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bi_activation_doubles_channels_into_the_next_layer():
    model = UNet(UNetConfig(num_classes=3, width=4, depth=1, activation="bi-relu"))
    assert isinstance(model.down[0][2], BiActivation)
    assert model.down[0][3].in_channels == 2 * 4  # conv after a bi-activation takes 2C
    assert model.down[0].out_channels == 8
    assert model.head.in_channels == 8
    plain = UNet(UNetConfig(num_classes=3, width=4, depth=1, activation="relu"))
    assert plain.down[0][3].in_channels == 4


@pytest.mark.parametrize("hw", [(16, 16), (32, 48), (48, 16)])
def test_any_size_divisible_by_two_to_the_depth(hw):
    model = unet_bn(2, width=4, depth=3).eval()
    assert model.divisor == 8
    with torch.no_grad():
        assert model(torch.zeros(1, 3, *hw)).shape == (1, 2, *hw)


def test_norm_after_every_3x3_conv_and_builders_pick_the_variant():
    bn = unet_bn(4, width=4, depth=2)
    convs = [m for m in bn.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    norms = [m for m in bn.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 2 * (2 * 2 + 1) and len(norms) == len(convs)
    assert all(c.bias is None for c in convs)  # BN's shift replaces the bias
    plain = unet_plain(4, width=4, depth=2)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, torch.nn.Conv2d))
    ens = unet_ensemble(4, other="instance", width=4, depth=2)
    assert sum(isinstance(m, EnsembleNorm) for m in ens.modules()) == len(convs)


def test_ensemble_norm_is_mean_of_its_two_norms():
    torch.manual_seed(0)
    norm = EnsembleNorm(torch.nn.BatchNorm2d(4), torch.nn.GroupNorm(2, 4))
    x = torch.randn(3, 4, 5, 5)
    assert torch.allclose(norm(x), (norm.batch(x) + norm.other(x)) / 2)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="activation"):
        UNetConfig(num_classes=2, activation="tanh")
    with pytest.raises(ValueError, match="norm"):
        UNetConfig(num_classes=2, norm="layer")
    with pytest.raises(ValueError, match="groups"):
        UNetConfig(num_classes=2, width=6, norm="group", groups=4)
    cfg = UNetConfig(num_classes=3, width=4, depth=2)
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
