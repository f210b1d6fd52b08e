import cv2
import numpy as np
import pytest

from seedlock.train.data.scenes import FINE_CLASSES, SCENE_CLASSES, SPECK, VAL_OFFSET, WIRE, make_scene, scene_splits


def test_same_seed_and_index_give_identical_scenes():
    a_img, a_mask = make_scene(5, 3, 48)
    b_img, b_mask = make_scene(5, 3, 48)
    assert a_img.dtype == np.uint8 and a_img.shape == (48, 48, 3)
    assert a_mask.dtype == np.uint8 and a_mask.shape == (48, 48)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)


def test_other_seed_or_index_gives_another_scene():
    img, _ = make_scene(5, 3, 48)
    assert not np.array_equal(img, make_scene(5, 4, 48)[0])
    assert not np.array_equal(img, make_scene(6, 3, 48)[0])


def test_all_classes_appear_across_a_few_scenes():
    seen = set()
    for i in range(4):
        seen |= set(np.unique(make_scene(0, i, 64)[1]).tolist())
    assert seen == set(range(len(SCENE_CLASSES)))
    assert 6 <= len(SCENE_CLASSES) <= 8 and SCENE_CLASSES[0] == "background"


def test_fine_parts_are_thin_or_small():
    kernel = np.ones((3, 3), np.uint8)
    wire_px = survived = 0
    speck_areas = []
    for i in range(6):
        _, mask = make_scene(1, i, 64)
        wire = (mask == WIRE).astype(np.uint8)
        wire_px += wire.sum()
        survived += cv2.erode(wire, kernel, iterations=2).sum()  # wider than ~4 px survives
        _, _, stats, _ = cv2.connectedComponentsWithStats((mask == SPECK).astype(np.uint8))
        speck_areas += stats[1:, cv2.CC_STAT_AREA].tolist()
    assert wire_px > 0 and survived / wire_px < 0.2
    assert speck_areas and max(speck_areas) <= 49  # blobs of radius <= 3


def test_colour_alone_does_not_decide_the_class():
    # nearest mean colour per class: a colour-only classifier must stay far from perfect
    imgs, masks = zip(*(make_scene(2, i, 64) for i in range(8)))
    x = np.concatenate([im.reshape(-1, 3) for im in imgs]).astype(np.float64)
    y = np.concatenate([m.reshape(-1) for m in masks])
    means = np.stack([x[y == c].mean(0) for c in range(len(SCENE_CLASSES))])
    pred = np.argmin(((x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    fine = np.isin(y, FINE_CLASSES)
    assert (pred[fine] == y[fine]).mean() < 0.8


def test_splits_do_not_overlap_and_validation_is_stable():
    train, val = scene_splits(0, 3, 2, 32)
    assert len(train) == 3 and len(val) == 2 and val.start == VAL_OFFSET
    _, val_more = scene_splits(0, 10, 2, 32)
    assert np.array_equal(val[1][0], val_more[1][0])  # n_train does not move the validation set
    with pytest.raises(IndexError):
        train[3]
