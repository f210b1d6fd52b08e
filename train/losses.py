"""Segmentation losses: cross-entropy or focal loss, plus the thesis's
prediction-error regularizers (4.4, Table 31; 3.3, Eq. 5).

The regularizers act on the *prediction error*, not on the weights. With
``p = softmax(logits)`` over classes and ``y`` the one-hot ground truth, the
error is ``e = y - p`` for every (valid pixel, class) element, and

    L1  = mean |e|                        (thesis: "absolute value of the error
    L2  = mean e^2                         between the actual and predicted values")
    Exp = mean |e| * exp(-mean e^2)       (Eq. 5, nonlinear exponential regularization)

all means over the same elements: valid pixels x classes of the whole batch.
Eq. 5 is printed with a leading minus; added to a loss that is minimized, that
sign would *reward* error, so we add the magnitude (the term is >= 0).

    total = base + l1 * L1 + l2 * L2 + exp_reg * Exp

The thesis's best U-Net-BN setting is focal loss with L1 = 0.5, L2 = 0.

Pixels labelled ``ignore_index`` (255) take no part in any term. A batch with
no valid pixel gives a zero loss (with a graph), not NaN.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_INDEX = 255
LOSSES = ("ce", "focal")


class SegmentationLoss(nn.Module):
    """``forward(logits (N, C, H, W), target (N, H, W) int64) -> scalar``.

    Args:
        name: ``"ce"`` (cross-entropy) or ``"focal"`` (Lin et al.:
            ``-alpha_t (1 - p_t)^gamma log p_t``).
        gamma: focal focusing parameter (ignored for ``"ce"``).
        alpha: focal class weights: one float for all classes, or one per
            class; ``None`` for no weighting. Pixel losses are averaged over
            valid pixels (not normalized by the weights).
        l1, l2, exp_reg: coefficients of the prediction-error terms above.

    After each call :attr:`terms` holds the detached values of the last batch
    as floats (``base``, ``l1``, ``l2``, ``exp``, ``total``; the regularizer
    values are unweighted) for logging.
    """

    def __init__(
        self,
        name: str = "focal",
        gamma: float = 2.0,
        l1: float = 0.0,
        l2: float = 0.0,
        exp_reg: float = 0.0,
        alpha: float | Sequence[float] | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0, got {gamma}")
        for label, value in (("l1", l1), ("l2", l2), ("exp_reg", exp_reg)):
            if value < 0:
                raise ValueError(f"{label} coefficient must be >= 0, got {value}")
        self.name = name
        self.gamma = float(gamma)
        self.l1 = float(l1)
        self.l2 = float(l2)
        self.exp_reg = float(exp_reg)
        self.ignore_index = int(ignore_index)
        if alpha is None:
            self.register_buffer("alpha", None)
        else:
            a = torch.as_tensor(alpha, dtype=torch.float32).reshape(-1)
            self.register_buffer("alpha", a)
        self.terms: dict[str, float] = {}

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
            raise ValueError(f"expected logits (N, C, H, W) and target (N, H, W); got {tuple(logits.shape)}, {tuple(target.shape)}")
        n_classes = logits.shape[1]
        valid = target != self.ignore_index  # (N, H, W)
        safe = torch.where(valid, target, torch.zeros_like(target))
        # one-hot by comparison rather than gather/scatter: deterministic on every backend.
        classes = torch.arange(n_classes, device=logits.device).view(1, -1, 1, 1)
        onehot = (safe.unsqueeze(1) == classes).to(logits.dtype)  # (N, C, H, W)
        vmask = valid.unsqueeze(1).to(logits.dtype)  # (N, 1, H, W)
        n_valid = valid.sum().clamp_min(1).to(logits.dtype)

        logp = F.log_softmax(logits.float(), dim=1).to(logits.dtype)
        logp_t = (logp * onehot).sum(1)  # (N, H, W): log p of the true class
        if self.name == "ce":
            pixel = -logp_t
        else:
            p_t = logp_t.exp()
            pixel = -((1.0 - p_t).clamp_min(0) ** self.gamma) * logp_t
        if self.alpha is not None:
            if self.alpha.numel() not in (1, n_classes):
                raise ValueError(f"focal alpha has {self.alpha.numel()} weights for {n_classes} classes")
            a = self.alpha.to(logits.dtype)
            alpha_t = a if a.numel() == 1 else (onehot * a.view(1, -1, 1, 1)).sum(1)
            pixel = pixel * alpha_t
        base = (pixel * valid.to(logits.dtype)).sum() / n_valid

        total = base
        terms = {"base": base}
        if self.l1 or self.l2 or self.exp_reg:
            err = (onehot - logp.exp()) * vmask  # zero on ignored pixels
            n_elem = n_valid * n_classes
            mean_abs = err.abs().sum() / n_elem
            mean_sq = (err * err).sum() / n_elem
            exp_term = mean_abs * torch.exp(-mean_sq)
            terms.update(l1=mean_abs, l2=mean_sq, exp=exp_term)
            total = total + self.l1 * mean_abs + self.l2 * mean_sq + self.exp_reg * exp_term
        terms["total"] = total
        self.terms = {k: float(v.detach()) for k, v in terms.items()}
        return total

    def extra_repr(self) -> str:
        focal = f", gamma={self.gamma}" if self.name == "focal" else ""
        return f"name={self.name!r}{focal}, l1={self.l1}, l2={self.l2}, exp_reg={self.exp_reg}"
