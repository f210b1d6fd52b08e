"""DCGAN (Radford et al., 2016) for grey fingerprint images, 64x64 or 128x128.

Generator: latent ``z (N, Z)`` -> 4x4 by a transposed conv, then stride-2
transposed convs doubling the side to ``image_size``, batch norm and ReLU
after each (but the last), tanh output in [-1, 1]. Discriminator: the mirror,
stride-2 convs halving the side to 4x4, LeakyReLU(0.2), batch norm on all but
the first, and a 4x4 conv to one logit per image (no sigmoid: the losses take
logits). Widths double per stage (``g_width``/``d_width`` at the image end).

The activations are configurable: the generator takes ``relu`` (Radford),
``elu``, or the thesis's ``bi-relu`` / ``bi-elu`` (3.1), which double the
channels, so the next layer takes ``2 * C`` inputs; the discriminator takes
``leaky-relu`` (Radford) or any of those. Weights are initialized as in the
paper: conv N(0, 0.02), batch-norm scale N(1, 0.02), biases 0.

:class:`GeneratorBank` holds one generator (trained on all qualities) or one
per quality (thesis: "DCGAN is trained by quality") and stacks their outputs
on axis 1: that is the exported graph, ``latent (N, Z) -> image (N, G, S, S)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from seedlock.train.bi_activation import ACTIVATIONS, channel_factor, make_activation

IMAGE_SIZES = (64, 128)
G_ACTIVATIONS = ACTIVATIONS  # relu, elu, bi-relu, bi-elu
D_ACTIVATIONS = ("leaky-relu",) + ACTIVATIONS


@dataclass
class DCGANConfig:
    """Everything needed to rebuild the networks (stored in checkpoints)."""

    image_size: int = 64
    latent_dim: int = 100
    channels: int = 1
    g_width: int = 64  # generator channels at the last (image-side) stage
    d_width: int = 64  # discriminator channels at the first (image-side) stage
    g_activation: str = "relu"
    d_activation: str = "leaky-relu"
    alpha: float = 1.0  # ELU alpha for elu / bi-elu
    leak: float = 0.2  # LeakyReLU slope

    def validate(self) -> None:
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {self.image_size}")
        for name in ("latent_dim", "channels", "g_width", "d_width"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.g_activation not in G_ACTIVATIONS:
            raise ValueError(f"g_activation must be one of {', '.join(G_ACTIVATIONS)}, got {self.g_activation!r}")
        if self.d_activation not in D_ACTIVATIONS:
            raise ValueError(f"d_activation must be one of {', '.join(D_ACTIVATIONS)}, got {self.d_activation!r}")
        if not (self.alpha > 0 and 0 <= self.leak < 1):
            raise ValueError(f"need alpha > 0 and 0 <= leak < 1, got alpha={self.alpha}, leak={self.leak}")

    @property
    def stages(self) -> int:
        """Stride-2 stages between 4x4 and the image: 4 for 64 px, 5 for 128 px."""
        return int(math.log2(self.image_size)) - 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DCGANConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown DCGAN config key(s): {', '.join(unknown)}")
        cfg = cls(**data)
        cfg.validate()
        return cfg


def _d_activation(cfg: DCGANConfig) -> nn.Module:
    if cfg.d_activation == "leaky-relu":
        return nn.LeakyReLU(cfg.leak)
    return make_activation(cfg.d_activation, cfg.alpha)


class Generator(nn.Module):
    """``z (N, latent_dim)`` -> image ``(N, channels, S, S)`` in [-1, 1]."""

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        cfg.validate()
        self.latent_dim = cfg.latent_dim
        k = channel_factor(cfg.g_activation)
        widths = [cfg.g_width * 2 ** (cfg.stages - 1 - i) for i in range(cfg.stages)]  # e.g. 8w, 4w, 2w, w
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.latent_dim, widths[0], 4, 1, 0, bias=False),  # 1x1 -> 4x4
            nn.BatchNorm2d(widths[0]),
            make_activation(cfg.g_activation, cfg.alpha),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [
                nn.ConvTranspose2d(k * c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                make_activation(cfg.g_activation, cfg.alpha),
            ]
        layers += [nn.ConvTranspose2d(k * widths[-1], cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """image ``(N, channels, S, S)`` -> one real/fake logit per image ``(N,)``."""

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__()
        cfg.validate()
        widths = [cfg.d_width * 2**i for i in range(cfg.stages)]  # e.g. w, 2w, 4w, 8w
        k = 1 if cfg.d_activation == "leaky-relu" else channel_factor(cfg.d_activation)
        # no batch norm on the input layer (Radford et al.)
        layers: list[nn.Module] = [nn.Conv2d(cfg.channels, widths[0], 4, 2, 1, bias=False), _d_activation(cfg)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(k * c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), _d_activation(cfg)]
        layers += [nn.Conv2d(k * widths[-1], 1, 4, 1, 0, bias=False)]  # 4x4 -> 1x1
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten()


def init_weights(module: nn.Module) -> None:
    """Radford et al.: conv weights N(0, 0.02); batch-norm scale N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_generator(cfg: DCGANConfig) -> Generator:
    g = Generator(cfg)
    init_weights(g)
    return g


def build_discriminator(cfg: DCGANConfig) -> Discriminator:
    d = Discriminator(cfg)
    init_weights(d)
    return d


class GeneratorBank(nn.Module):
    """One generator per name (``["all"]`` or ``["Q1", "Q2", ...]``), outputs stacked on axis 1.

    ``latent (N, Z) -> image (N, G, S, S)``; slice ``g`` is generator ``names[g]``
    (single-channel images). The server picks the slice of the requested quality."""

    def __init__(self, cfg: DCGANConfig, names: list[str]) -> None:
        super().__init__()
        if cfg.channels != 1:
            raise ValueError("GeneratorBank stacks single-channel generators on axis 1; channels must be 1")
        if not names:
            raise ValueError("GeneratorBank needs at least one generator name")
        self.names = list(names)
        self.generators = nn.ModuleList(build_generator(cfg) for _ in names)

    def forward(self, z: Tensor) -> Tensor:
        if len(self.generators) == 1:
            return self.generators[0](z)
        return torch.cat([g(z) for g in self.generators], dim=1)


class DiscriminatorBank(nn.Module):
    """The discriminators paired with a :class:`GeneratorBank` (training only)."""

    def __init__(self, cfg: DCGANConfig, names: list[str]) -> None:
        super().__init__()
        self.names = list(names)
        self.discriminators = nn.ModuleList(build_discriminator(cfg) for _ in names)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
