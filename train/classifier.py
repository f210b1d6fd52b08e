"""The thesis's CNN classifier family (3.1, Figure 4) with a choice of activation.

    conv3(c) act conv3(c) act conv4/2(c) act conv3(2c) act conv3(2c) act conv4/2(2c) act  FC(512) FC(classes)

``c`` is the base filter count: CNN-Large 128, CNN-Middle 96, CNN-Small 64,
CNN-Little 32 (the thesis's 1.0/0.75/0.5/0.25 scaling); ``two-layer`` is its
Figure 5 model, conv3(c) act conv4/2(2c) act FC FC. ``width`` scales every
count (the thesis sized them for 28×28 MNIST; 8×8 digits need fewer).

With a bi-activation each activation emits twice its input's channels, so
the next layer sees 2× the inputs (seedlock's reading: more parameters).
``matched=True`` is the parameter-matched control: the layer before each
bi-activation has half the filters, so every layer sees the channel counts of
the thesis's tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seedlock.core.rng import SeedStream
from seedlock.train.bi_activation import ACTIVATIONS, channel_factor, make_activation
from seedlock.train.data.digits import Split
from seedlock.train.determinism import deterministic

FAMILY = {"large": 128, "middle": 96, "small": 64, "little": 32, "two-layer": 32}
ORDER_STREAM = 0xB47C  # SeedStream stream id (+ epoch) of the batch order


@dataclass(frozen=True)
class ClassifierConfig:
    size: str = "small"  # large | middle | small | little | two-layer
    activation: str = "relu"  # relu | elu | bi-relu | bi-elu
    matched: bool = False  # half the filters before each bi-activation
    width: float = 1.0  # multiplies every filter count
    in_channels: int = 1
    image_size: int = 8
    num_classes: int = 10
    hidden: int = 512

    def __post_init__(self) -> None:
        if self.size not in FAMILY:
            raise ValueError(f"unknown classifier size {self.size!r}; choose one of {', '.join(FAMILY)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Classifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = max(1, round(FAMILY[cfg.size] * cfg.width))
        # (out_channels, kernel, stride) per conv, from the thesis's tables
        plan = (
            [(c, 3, 1), (2 * c, 4, 2)]
            if cfg.size == "two-layer"
            else [(c, 3, 1), (c, 3, 1), (c, 4, 2), (2 * c, 3, 1), (2 * c, 3, 1), (2 * c, 4, 2)]
        )
        factor = channel_factor(cfg.activation)
        layers: list[nn.Module] = []
        inputs, side = cfg.in_channels, cfg.image_size
        for out, k, s in plan:
            filters = max(1, out // factor) if cfg.matched else out
            layers += [nn.Conv2d(inputs, filters, k, s, 1), make_activation(cfg.activation)]
            inputs = filters * factor
            side = (side + 2 - k) // s + 1
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(inputs * side * side, cfg.hidden), nn.Linear(cfg.hidden, cfg.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class TrainResult:
    model: Classifier
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: train loss/acc, val acc

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1]


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch: int = 512) -> dict[str, float]:
    """Mean cross-entropy and accuracy over ``split``."""
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(split), batch):
        x = torch.from_numpy(split.images[i : i + batch])
        y = torch.from_numpy(split.labels[i : i + batch])
        logits = model(x)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    return {"loss": loss / len(split), "acc": correct / len(split)}


def train_classifier(
    cfg: ClassifierConfig,
    train: Split,
    val: Split,
    seed: int,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    threads: int | None = 1,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Adam on cross-entropy (the thesis's log-softmax + NLL), seed-locked.

    ``seed`` sets the weight initialisation and the batch order (a Philox
    stream per epoch); the data split is the caller's. The same arguments on
    the same machine give bit-identical weights and history."""
    with deterministic(threads):
        torch.manual_seed(seed)
        model = Classifier(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        x_all, y_all = torch.from_numpy(train.images), torch.from_numpy(train.labels)
        result = TrainResult(model)
        for epoch in range(epochs):
            model.train()
            order = torch.from_numpy(SeedStream(seed, ORDER_STREAM + epoch).permutation(len(train)))
            for i in range(0, len(train), batch_size):
                idx = order[i : i + batch_size]
                loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            tr, va = evaluate(model, train), evaluate(model, val)
            row = {"epoch": epoch + 1, "train_loss": tr["loss"], "train_acc": tr["acc"], "val_loss": va["loss"], "val_acc": va["acc"]}
            result.history.append(row)
            if log:
                log(f"{cfg.size}/{cfg.activation}{'/matched' if cfg.matched else ''} seed {seed} epoch {epoch + 1}: "
                    f"train loss {tr['loss']:.3f} acc {tr['acc']:.3f}, val acc {va['acc']:.3f}")  # fmt: skip
        model.eval()
        return result


def predict(model: nn.Module, images: np.ndarray) -> np.ndarray:
    """Logits as float32 numpy (the reference for an ONNX parity check)."""
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))).numpy()
