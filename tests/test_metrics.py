import json

import numpy as np
import pytest

from seedlock.core.metrics import confusion_matrix, per_class_scores, scores_from_confusion, segmentation_scores


def test_confusion_matrix_counts_truth_rows_pred_columns_and_skips_ignore():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert cm.sum() == 5  # the 255 pixel is not counted


def test_confusion_matrix_rejects_out_of_range_and_shape_mismatch():
    with pytest.raises(ValueError, match="class 3"):
        confusion_matrix(np.array([3]), np.array([0]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)


def test_scores_match_hand_computation():
    # truth 0: 4 px, class 1: 3 px, class 2: 3 px
    target = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    s = segmentation_scores(pred, target, 3)
    # class 1: tp 2, fp 1, fn 1 -> iou 0.5, p 2/3, r 2/3, f1 2/3
    # class 2: tp 2, fp 1, fn 1 -> same; class 0: tp 3, fp 1, fn 1 -> iou 0.6, p .75, r .75
    assert s["per_class"]["iou"] == pytest.approx([0.6, 0.5, 0.5])
    assert s["per_class"]["precision"] == pytest.approx([0.75, 2 / 3, 2 / 3])
    assert s["per_class"]["recall"] == pytest.approx([0.75, 2 / 3, 2 / 3])
    assert s["per_class"]["f1"] == pytest.approx([0.75, 2 / 3, 2 / 3])
    assert s["mean_iou"] == pytest.approx(0.5)  # background excluded
    assert s["mean_iou_with_background"] == pytest.approx((0.6 + 0.5 + 0.5) / 3)
    assert s["pixel_accuracy"] == pytest.approx(0.7)
    assert s["pixels"] == 10


def test_f1_equals_dice_and_matches_sklearn_style_formula():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, 500)
    pred = np.where(rng.random(500) < 0.7, target, rng.integers(0, 4, 500))
    s = per_class_scores(confusion_matrix(pred, target, 4))
    for c in range(4):
        t, p = target == c, pred == c
        dice = 2 * (t & p).sum() / (t.sum() + p.sum())
        assert s["f1"][c] == pytest.approx(dice)
        prec, rec = (t & p).sum() / p.sum(), (t & p).sum() / t.sum()
        assert s["f1"][c] == pytest.approx(2 * prec * rec / (prec + rec))


def test_absent_class_is_none_and_left_out_of_means_while_missed_class_scores_zero():
    target = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 0, 0])  # class 1 never predicted, class 2 absent everywhere
    s = segmentation_scores(pred, target, 3, class_names=["bg", "a", "b"])
    assert s["per_class"]["iou"][2] is None
    assert s["per_class"]["precision"][1] == 0.0  # missed entirely: a real zero
    assert s["per_class"]["recall"][1] == 0.0
    assert s["mean_iou"] == 0.0  # only class 1 counts
    assert s["mean_iou_with_background"] == pytest.approx((0.5 + 0.0) / 2)
    assert s["class_names"] == ["bg", "a", "b"]
    json.dumps(s, allow_nan=False)  # plain, strict JSON


def test_all_ignored_gives_no_means():
    s = segmentation_scores(np.zeros(3), np.full(3, 255), 2)
    assert s["pixels"] == 0 and s["pixel_accuracy"] is None and s["mean_iou"] is None


def test_matrices_from_batches_add_up():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 3, (4, 8, 8))
    p = rng.integers(0, 3, (4, 8, 8))
    total = sum(confusion_matrix(p[i], t[i], 3) for i in range(4))
    assert (total == confusion_matrix(p, t, 3)).all()
    assert scores_from_confusion(total) == segmentation_scores(p, t, 3)


# -- the thesis reading: Keras-style metrics over one-hot (pixel, class) elements


def test_element_counts_match_hand_computation_and_skip_ignore():
    from seedlock.core.metrics import element_counts, element_scores

    # 3 classes, 3 pixels (+1 ignored): truth 0, 1, 2, 255
    target = np.array([[[0, 1], [2, 255]]])
    prob = np.zeros((1, 3, 2, 2))
    prob[0, :, 0, 0] = [0.6, 0.3, 0.1]  # tp (class 0)
    prob[0, :, 0, 1] = [0.2, 0.4, 0.4]  # nothing above 0.5: fn (class 1)
    prob[0, :, 1, 0] = [0.7, 0.2, 0.1]  # fp (class 0) and fn (class 2)
    prob[0, :, 1, 1] = [1.0, 0.0, 0.0]  # ignored
    counts = element_counts(prob, target, 0.5)
    assert counts.tolist() == [1, 1, 2, 9 - 4]
    s = element_scores(counts)
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(1 / 3)
    assert s["iou_positive"] == pytest.approx(1 / 4) and s["iou_negative"] == pytest.approx(5 / 8)
    assert s["iou"] == pytest.approx((1 / 4 + 5 / 8) / 2)
    with pytest.raises(ValueError, match="expected prob"):
        element_counts(prob[0], target)


def test_a_model_that_finds_nothing_scores_c_minus_1_over_2c():
    """The thesis's Table 31 pattern: recall 0, precision 0, yet IoU near one half."""
    from seedlock.core.metrics import element_counts, element_scores

    rng = np.random.default_rng(0)
    for c in (2, 7, 18):
        target = rng.integers(0, c, (2, 5, 5))
        s = element_scores(element_counts(np.full((2, c, 5, 5), 1.0 / c), target, 0.5))
        assert s["recall"] == 0 and s["precision"] == 0 and s["iou_positive"] == 0
        assert s["iou"] == pytest.approx((c - 1) / (2 * c))
    assert element_scores(np.zeros(4))["iou"] is None


def test_argmax_element_counts_from_the_confusion_matrix():
    from seedlock.core.metrics import element_counts, element_counts_from_confusion, element_scores

    rng = np.random.default_rng(1)
    target = rng.integers(0, 4, (3, 6, 6))
    pred = np.where(rng.random((3, 6, 6)) < 0.6, target, rng.integers(0, 4, (3, 6, 6)))
    onehot = (pred[:, None] == np.arange(4)[None, :, None, None]).astype(float)
    cm = confusion_matrix(pred, target, 4)
    assert element_counts_from_confusion(cm).tolist() == element_counts(onehot, target, 0.5).tolist()
    s = element_scores(element_counts_from_confusion(cm))
    acc = np.trace(cm) / cm.sum()
    assert s["precision"] == pytest.approx(acc) and s["recall"] == pytest.approx(acc) and s["f1"] == pytest.approx(acc)
