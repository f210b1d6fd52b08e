"""U-Net with a normalization after every 3x3 convolution (thesis 4.4, "U-Net-BN").

    encoder:    [conv3x3 -> norm -> act] x2, then 2x2 max-pool       (depth times)
    bottleneck: [conv3x3 -> norm -> act] x2
    decoder:    2x2 transposed conv up, concat skip, [conv3x3 -> norm -> act] x2
    head:       1x1 conv -> logits (N, num_classes, H, W)

Stage ``i`` has ``width * 2**i`` filters. The thesis found that normalizing
*every* layer is what lets U-Net keep fine-grained segments stable across
scales; ``norm="none"`` gives the plain U-Net it compares against, and the
``ensemble-*`` norms are the thesis's ensemble normalization (3.5):
``(BN(x) + Other(x)) / 2``.

With a bi-activation (``bi-relu``/``bi-elu``) every activation doubles its
channels, so the layer after it takes ``2 * C`` inputs; ``channel_factor``
tells us by how much.

Export notes: ``forward`` has no data-dependent Python control flow, so
``torch.onnx.export(dynamo=True)`` can keep H and W dynamic. H and W must be
divisible by ``2**depth`` (:attr:`UNet.divisor`); the caller (letterbox to a
multiple) guarantees it rather than a shape check that export would have to
trace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from seedlock.train.bi_activation import ACTIVATIONS, channel_factor, make_activation

NORMS = ("batch", "instance", "group", "none", "ensemble-instance", "ensemble-group")


@dataclass
class UNetConfig:
    num_classes: int
    in_channels: int = 3
    width: int = 16
    depth: int = 4
    activation: str = "relu"
    alpha: float = 1.0
    norm: str = "batch"
    groups: int = 4

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.in_channels < 1 or self.width < 1:
            raise ValueError("in_channels and width must be >= 1")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
        if self.norm.endswith("group"):
            bad = [c for c in self.stage_channels if c % self.groups]
            if self.groups < 1 or bad:
                raise ValueError(
                    f"group norm needs every stage's channels {self.stage_channels} divisible by "
                    f"groups={self.groups}; pick width as a multiple of groups"
                )

    @property
    def stage_channels(self) -> list[int]:
        """Filters per stage, encoder top to bottleneck."""
        return [self.width * 2**i for i in range(self.depth + 1)]

    @property
    def divisor(self) -> int:
        return 2**self.depth

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UNetConfig":
        return cls(**data)


class EnsembleNorm(nn.Module):
    """Thesis 3.5: the mean of batch norm and a second normalization of the same input."""

    def __init__(self, batch: nn.Module, other: nn.Module) -> None:
        super().__init__()
        self.batch = batch
        self.other = other

    def forward(self, x: Tensor) -> Tensor:
        return (self.batch(x) + self.other(x)) * 0.5


def make_norm(kind: str, channels: int, groups: int = 4) -> nn.Module:
    """The normalization layer for ``kind`` over ``channels`` feature maps."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        # affine: learnable scale/shift like BN; no running stats, so train and eval agree.
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    if kind.startswith("ensemble-"):
        return EnsembleNorm(nn.BatchNorm2d(channels), make_norm(kind[len("ensemble-") :], channels, groups))
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


class ConvBlock(nn.Sequential):
    """[conv3x3 -> norm -> act] x2. Emits ``out_channels * channel_factor(activation)`` maps."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig) -> None:
        f = channel_factor(cfg.activation)
        bias = cfg.norm == "none"  # a norm's shift makes a conv bias redundant
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
            make_norm(cfg.norm, out_channels, cfg.groups),
            make_activation(cfg.activation, cfg.alpha),
            nn.Conv2d(out_channels * f, out_channels, 3, padding=1, bias=bias),
            make_norm(cfg.norm, out_channels, cfg.groups),
            make_activation(cfg.activation, cfg.alpha),
        )
        self.out_channels = out_channels * f


class UNet(nn.Module):
    """U-Net segmenter; ``forward(x: (N, in_channels, H, W)) -> logits (N, num_classes, H, W)``."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        chans = cfg.stage_channels
        self.down = nn.ModuleList()
        c_in = cfg.in_channels
        for c in chans[:-1]:
            block = ConvBlock(c_in, c, cfg)
            self.down.append(block)
            c_in = block.out_channels
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = ConvBlock(c_in, chans[-1], cfg)
        c_in = self.bottleneck.out_channels

        self.up = nn.ModuleList()
        self.decode = nn.ModuleList()
        for i in reversed(range(cfg.depth)):
            c = chans[i]
            self.up.append(nn.ConvTranspose2d(c_in, c, kernel_size=2, stride=2))
            skip = self.down[i].out_channels
            block = ConvBlock(c + skip, c, cfg)
            self.decode.append(block)
            c_in = block.out_channels
        self.head = nn.Conv2d(c_in, cfg.num_classes, kernel_size=1)

    @property
    def divisor(self) -> int:
        """H and W of the input must be multiples of this."""
        return self.cfg.divisor

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.decode, reversed(skips)):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def unet(num_classes: int, **kw: Any) -> UNet:
    """A U-Net from :class:`UNetConfig` fields (defaults: U-Net-BN, width 16, depth 4)."""
    return UNet(UNetConfig(num_classes=num_classes, **kw))


def unet_bn(num_classes: int, **kw: Any) -> UNet:
    """The thesis's U-Net-BN: batch norm after every 3x3 conv."""
    return unet(num_classes, **{**kw, "norm": "batch"})


def unet_plain(num_classes: int, **kw: Any) -> UNet:
    """The original U-Net without normalization (the thesis's baseline)."""
    return unet(num_classes, **{**kw, "norm": "none"})


def unet_ensemble(num_classes: int, other: str = "group", **kw: Any) -> UNet:
    """U-Net with ensemble normalization (BN + ``other``) / 2, ``other`` in instance/group."""
    if other not in ("instance", "group"):
        raise ValueError(f"ensemble partner must be 'instance' or 'group', got {other!r}")
    return unet(num_classes, **{**kw, "norm": f"ensemble-{other}"})
