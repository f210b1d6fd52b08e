"""Bi-activation (thesis 3.1) as a registered PyTorch custom operator.

    BiActivation(x; base, alpha) = concat(f(x), -f(-x))   along dim 1

``f`` is ``relu`` or ``elu(alpha)``. The first half (pos-activation) is linear
where x >= 0, the second (neg-activation) is linear where x < 0, so no input
value is blocked by both halves. The output has twice the input's channels.

The op is registered as ``seedlock::bi_activation`` so that ``torch.export``
sees one opaque node per use: the ONNX exporter (``seedlock.export``) turns it
into one ``ai.seedlock::BiActivation`` node, and TensorRT into one plugin.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BASES = ("relu", "elu")


def _check(x: Tensor, base: str) -> None:
    if base not in BASES:
        raise ValueError(f"bi_activation base must be one of {BASES}, got {base!r}")
    if x.dim() < 2:
        raise ValueError(f"bi_activation needs a channel axis (dim 1); got a {x.dim()}-d tensor")


@torch.library.custom_op("seedlock::bi_activation", mutates_args=())
def bi_activation(x: Tensor, base: str, alpha: float) -> Tensor:
    """``concat(f(x), -f(-x))`` on dim 1, ``f`` = relu or elu(alpha)."""
    _check(x, base)
    if base == "relu":
        # -relu(-x) == min(x, 0)
        return torch.cat([x.clamp_min(0), x.clamp_max(0)], dim=1)
    return torch.cat([F.elu(x, alpha), -F.elu(-x, alpha)], dim=1)


@bi_activation.register_fake
def _bi_activation_fake(x: Tensor, base: str, alpha: float) -> Tensor:
    _check(x, base)
    shape = list(x.shape)
    shape[1] = shape[1] * 2
    return x.new_empty(shape)


def _setup_context(ctx, inputs, output) -> None:
    x, base, alpha = inputs
    ctx.save_for_backward(x)
    ctx.base = base
    ctx.alpha = alpha


def _backward(ctx, grad: Tensor):
    (x,) = ctx.saved_tensors
    c = x.shape[1]
    g_pos, g_neg = grad.narrow(1, 0, c), grad.narrow(1, c, c)
    if ctx.base == "relu":
        d_pos = (x > 0).to(x.dtype)
        d_neg = (x < 0).to(x.dtype)
    else:
        # d/dx elu(x) = 1 (x > 0) else alpha*exp(x); d/dx -elu(-x) = elu'(-x).
        d_pos = torch.where(x > 0, torch.ones_like(x), ctx.alpha * torch.exp(x.clamp_max(0)))
        d_neg = torch.where(x < 0, torch.ones_like(x), ctx.alpha * torch.exp(-x.clamp_min(0)))
    return g_pos * d_pos + g_neg * d_neg, None, None


bi_activation.register_autograd(_backward, setup_context=_setup_context)


class BiActivation(nn.Module):
    """``nn.Module`` wrapper: ``BiActivation("elu", alpha=1.0)(x)`` doubles dim 1."""

    def __init__(self, base: str = "relu", alpha: float = 1.0) -> None:
        super().__init__()
        if base not in BASES:
            raise ValueError(f"bi_activation base must be one of {BASES}, got {base!r}")
        self.base = base
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return torch.ops.seedlock.bi_activation(x, self.base, self.alpha)

    def extra_repr(self) -> str:
        return f"base={self.base!r}, alpha={self.alpha}" if self.base == "elu" else "base='relu'"


ACTIVATIONS = ("relu", "elu", "bi-relu", "bi-elu")


def make_activation(name: str, alpha: float = 1.0) -> nn.Module:
    """The activation layer for a config name: relu, elu, bi-relu or bi-elu."""
    if name == "relu":
        return nn.ReLU()
    if name == "elu":
        return nn.ELU(alpha)
    if name in ("bi-relu", "bi-elu"):
        return BiActivation(name[3:], alpha)
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


def channel_factor(name: str) -> int:
    """How many channels an activation emits per input channel (2 for bi-*)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return 2 if name.startswith("bi-") else 1
