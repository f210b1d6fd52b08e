import math

import numpy as np
import pytest
import torch

from seedlock.train.losses import SegmentationLoss

torch.set_num_threads(1)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _reference(logits, target, name, gamma=2.0, l1=0.0, l2=0.0, exp_reg=0.0, alpha=None):
    """Straight numpy: per-pixel loss over valid pixels, error terms over valid pixels x classes."""
    z = logits.numpy().astype(np.float64)
    t = target.numpy()
    p = _softmax(z)
    n, c, h, w = z.shape
    base, errs = [], []
    for i in range(n):
        for y in range(h):
            for x in range(w):
                if t[i, y, x] == 255:
                    continue
                k = t[i, y, x]
                pt = p[i, k, y, x]
                loss = -math.log(pt) if name == "ce" else -((1 - pt) ** gamma) * math.log(pt)
                if alpha is not None:
                    loss *= alpha[k]
                base.append(loss)
                onehot = np.eye(c)[k]
                errs.extend(onehot - p[i, :, y, x])
    e = np.array(errs)
    mean_abs, mean_sq = np.abs(e).mean(), (e**2).mean()
    total = np.mean(base) + l1 * mean_abs + l2 * mean_sq + exp_reg * mean_abs * math.exp(-mean_sq)
    return total, mean_abs, mean_sq


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 5, generator=g) * 2
    target = torch.randint(0, 4, (2, 3, 5), generator=g)
    target[0, 0, :3] = 255
    target[1, 2, 4] = 255
    return logits, target


def test_cross_entropy_matches_torch_and_numpy(batch):
    logits, target = batch
    loss = SegmentationLoss("ce")(logits, target)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, target, ignore_index=255).item(), rel=1e-5)
    assert loss.item() == pytest.approx(_reference(logits, target, "ce")[0], rel=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_focal_matches_numpy_and_gamma_zero_is_cross_entropy(batch, gamma):
    logits, target = batch
    loss = SegmentationLoss("focal", gamma=gamma)(logits, target)
    assert loss.item() == pytest.approx(_reference(logits, target, "focal", gamma)[0], rel=1e-5)
    if gamma == 0:
        assert loss.item() == pytest.approx(SegmentationLoss("ce")(logits, target).item(), rel=1e-6)


def test_focal_class_weights(batch):
    logits, target = batch
    alpha = [0.1, 0.2, 0.3, 0.4]
    loss = SegmentationLoss("focal", alpha=alpha)(logits, target)
    assert loss.item() == pytest.approx(_reference(logits, target, "focal", alpha=alpha)[0], rel=1e-5)


@pytest.mark.parametrize("name", ["ce", "focal"])
def test_prediction_error_terms_match_numpy(batch, name):
    logits, target = batch
    fn = SegmentationLoss(name, l1=0.5, l2=0.5, exp_reg=0.25)
    loss = fn(logits, target)
    total, mean_abs, mean_sq = _reference(logits, target, name, l1=0.5, l2=0.5, exp_reg=0.25)
    assert loss.item() == pytest.approx(total, rel=1e-5)
    assert fn.terms["l1"] == pytest.approx(mean_abs, rel=1e-5)
    assert fn.terms["l2"] == pytest.approx(mean_sq, rel=1e-5)
    assert fn.terms["exp"] == pytest.approx(mean_abs * math.exp(-mean_sq), rel=1e-5)
    assert fn.terms["total"] == pytest.approx(loss.item())
    assert fn.terms["exp"] > 0  # the magnitude, not Eq. 5's printed negative sign


def test_terms_act_on_predictions_not_weights():
    # a perfect, confident prediction has (near) zero error terms, whatever the weights are
    target = torch.tensor([[[0, 1], [2, 1]]])
    logits = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    fn = SegmentationLoss("focal", l1=0.5, l2=0.5, exp_reg=0.5)
    assert fn(logits, target).item() == pytest.approx(0.0, abs=1e-6)


def test_ignored_pixels_change_nothing(batch):
    logits, target = batch
    fn = SegmentationLoss("focal", l1=0.5, exp_reg=0.5)
    a = fn(logits, target).item()
    scrambled = logits.clone()
    scrambled[0, :, 0, :3] = torch.tensor([100.0, -100.0, 3.0, 0.0]).view(4, 1)  # only ignored pixels
    assert fn(scrambled, target).item() == pytest.approx(a, rel=1e-6)


def test_all_ignored_batch_gives_zero_not_nan():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = SegmentationLoss("focal", l1=0.5, l2=0.5, exp_reg=0.5)(logits, torch.full((1, 2, 2), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("kw", [{"name": "ce"}, {"name": "focal", "l1": 0.5}, {"name": "ce", "l2": 0.5, "exp_reg": 1.0}])
def test_gradients_flow_and_descend(batch, kw):
    logits, target = batch
    logits = logits.clone().requires_grad_(True)
    fn = SegmentationLoss(**kw)
    loss = fn(logits, target)
    loss.backward()
    g = logits.grad
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert (g[0, :, 0, :3] == 0).all()  # ignored pixels get no gradient
    with torch.no_grad():
        assert fn(logits - 0.5 * g, target) < loss  # a small step down the gradient lowers the loss


def test_bad_options_raise():
    with pytest.raises(ValueError, match="loss"):
        SegmentationLoss("dice")
    with pytest.raises(ValueError, match="l1"):
        SegmentationLoss("ce", l1=-1)
