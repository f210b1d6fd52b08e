"""The thesis's CNN classifier family (train/classifier.py), the digits splits
(train/data/digits.py) and the classifier's ONNX export (export/classifier.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seedlock.train.bi_activation import BiActivation
from seedlock.train.classifier import FAMILY, Classifier, ClassifierConfig, evaluate, parameter_count, predict, train_classifier
from seedlock.train.data.digits import Split, load_digits

SIZES = ("large", "middle", "small", "little", "two-layer")
ACTIVATIONS = ("relu", "elu", "bi-relu", "bi-elu")


def _conv_params(model: Classifier) -> int:
    return sum(p.numel() for m in model.features if isinstance(m, torch.nn.Conv2d) for p in m.parameters())


def _fc_in(model: Classifier) -> int:
    return model.head[1].in_features


@pytest.fixture(scope="module")
def digits():
    return load_digits(0)


def _tiny(split: Split, n: int) -> Split:
    return Split(split.images[:n], split.labels[:n])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_size_and_activation_gives_class_logits(size, activation):
    model = Classifier(ClassifierConfig(size=size, activation=activation, width=0.25))
    out = model(torch.zeros(3, 1, 8, 8))
    assert out.shape == (3, 10)
    c = round(FAMILY[size] * 0.25)
    factor = 2 if activation.startswith("bi-") else 1
    # 8x8 -> 4x4 -> 2x2 (family) or 8x8 -> 4x4 (two-layer); 2c channels at the end, doubled by a bi-activation
    side = 4 if size == "two-layer" else 2
    assert _fc_in(model) == 2 * c * factor * side * side
    n_bi = sum(isinstance(m, BiActivation) for m in model.modules())
    assert n_bi == (len(model.features) // 2 if factor == 2 else 0)  # every activation goes through the custom op


@pytest.mark.parametrize("size, printed", [("large", 12544), ("middle", 9408), ("small", 6272), ("little", 3136)])
def test_full_width_on_28x28_gives_the_thesis_fc_width(size, printed):
    with torch.device("meta"):
        plain = Classifier(ClassifierConfig(size=size, activation="relu", image_size=28))
        doubled = Classifier(ClassifierConfig(size=size, activation="bi-elu", image_size=28))
        matched = Classifier(ClassifierConfig(size=size, activation="bi-elu", matched=True, image_size=28))
    assert _fc_in(plain) == printed == _fc_in(matched)
    assert _fc_in(doubled) == 2 * printed


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("activation", ("bi-relu", "bi-elu"))
def test_matched_control_halves_the_conv_parameters(size, activation):
    plain = Classifier(ClassifierConfig(size=size, activation="relu", width=0.25))
    doubled = Classifier(ClassifierConfig(size=size, activation=activation, width=0.25))
    matched = Classifier(ClassifierConfig(size=size, activation=activation, matched=True, width=0.25))
    # half the filters, each seeing the plain network's channel counts: exactly half the conv weights and biases
    assert 2 * _conv_params(matched) == _conv_params(plain)
    assert _fc_in(matched) == _fc_in(plain) and _fc_in(doubled) == 2 * _fc_in(plain)
    assert parameter_count(matched) < parameter_count(plain) < parameter_count(doubled)
    # the doubled reading: every conv after the first sees twice the inputs, so the convs have nearly 2x the weights
    assert 1.8 < _conv_params(doubled) / _conv_params(plain) <= 2.0


def test_matched_is_a_no_op_for_plain_activations():
    a = Classifier(ClassifierConfig(size="small", activation="elu", width=0.25))
    b = Classifier(ClassifierConfig(size="small", activation="elu", matched=True, width=0.25))
    assert parameter_count(a) == parameter_count(b) and _fc_in(a) == _fc_in(b)


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="size"):
        ClassifierConfig(size="huge")
    with pytest.raises(ValueError, match="activation"):
        ClassifierConfig(activation="gelu")


def test_training_is_seed_locked(digits):
    cfg = ClassifierConfig(size="little", activation="bi-elu", width=0.25)
    train, val = _tiny(digits.train, 256), _tiny(digits.val, 128)
    a = train_classifier(cfg, train, val, seed=7, epochs=2)
    b = train_classifier(cfg, train, val, seed=7, epochs=2)
    c = train_classifier(cfg, train, val, seed=8, epochs=2)
    assert a.history == b.history
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    assert a.history != c.history
    assert [h["epoch"] for h in a.history] == [1, 2]
    assert set(a.final) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc"}


def test_training_learns_the_digits(digits):
    result = train_classifier(ClassifierConfig(size="little", activation="elu", width=0.25), digits.train, digits.val, seed=1, epochs=4)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.final["val_acc"] > 0.5


def test_evaluate_and_predict_agree(digits):
    model = Classifier(ClassifierConfig(size="little", activation="bi-relu", width=0.25))
    test = _tiny(digits.test, 100)
    logits = predict(model, test.images)
    assert logits.shape == (100, 10) and logits.dtype == np.float32
    expected = {"acc": float((logits.argmax(1) == test.labels).mean())}
    got = evaluate(model, test, batch=32)  # several batches
    assert got["acc"] == pytest.approx(expected["acc"])
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(test.labels)).item()
    assert got["loss"] == pytest.approx(loss, rel=1e-5)


def test_digit_splits_are_stratified_disjoint_and_complete(digits):
    from sklearn.datasets import load_digits as sk_load

    total = len(sk_load().target)
    sizes = [len(digits.train), len(digits.val), len(digits.test)]
    assert sum(sizes) == total
    assert sizes[0] == pytest.approx(0.6 * total, abs=10) and sizes[2] == pytest.approx(0.2 * total, abs=10)
    for split in (digits.train, digits.val, digits.test):
        assert split.images.dtype == np.float32 and split.images.shape[1:] == (1, 8, 8)
        assert split.labels.dtype == np.int64
        assert 0.0 <= split.images.min() and split.images.max() <= 1.0
        counts = np.bincount(split.labels, minlength=10) / len(split)
        assert np.all(np.abs(counts - 0.1) < 0.02)  # every class in proportion
    rows = {d.tobytes() + bytes([y]) for s in (digits.train, digits.val, digits.test) for d, y in zip(s.images, s.labels)}
    assert len(rows) >= total - 20  # (load_digits holds a few duplicate images)


def test_split_depends_on_the_split_seed_only(digits):
    again = load_digits(0)
    assert np.array_equal(again.test.images, digits.test.images) and np.array_equal(again.train.labels, digits.train.labels)
    other = load_digits(1)
    assert not np.array_equal(other.test.images, digits.test.images)
    assert other.split_seed == 1 and digits.split_seed == 0
    # training with any model seed leaves the data untouched
    before = digits.train.images.copy()
    train_classifier(ClassifierConfig(size="little", width=0.25), _tiny(digits.train, 64), _tiny(digits.val, 32), seed=123, epochs=1)
    assert np.array_equal(before, digits.train.images)


def test_bi_activation_classifier_exports_to_onnx_with_parity(digits):
    from seedlock.export.classifier import classifier_parity, export_classifier

    torch.manual_seed(0)
    model = Classifier(ClassifierConfig(size="little", activation="bi-elu", width=0.25)).eval()
    data = export_classifier(model, 1, 8)
    assert data == export_classifier(model, 1, 8)  # deterministic bytes
    parity = classifier_parity(model, data, digits.test.images[:50])  # any batch size: the batch axis is dynamic
    assert parity.ok, parity
    assert parity.images == 50 and parity.argmax_agreement == 1.0
    assert parity.bi_activation_nodes == 6 and parity.has_function
