import struct
import zlib

import cv2
import numpy as np
import pytest
import torch

from seedlock.core.errors import UserError
from seedlock.core.imaging import normalize
from seedlock.train.data.segmentation import SegmentationDataset, build_sources
from seedlock.train.data.voc import VOC_CLASSES, SegmentationFolder, decode_mask, letterbox_mask


def _palette_png(indices: np.ndarray, palette: np.ndarray) -> bytes:
    """A minimal 8-bit palette PNG (colour type 3), as VOC ships its masks."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    h, w = indices.shape
    raw = b"".join(b"\x00" + indices[y].astype(np.uint8).tobytes() for y in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
        + chunk(b"PLTE", palette.astype(np.uint8).tobytes())
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _voc_palette() -> np.ndarray:
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def _write_voc(root, names, h=24, w=40):
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    masks = {}
    for k, name in enumerate(names):
        img = np.full((h, w, 3), 40 * k, np.uint8)
        cv2.imwrite(str(root / "JPEGImages" / f"{name}.png"), img)
        mask = np.zeros((h, w), np.uint8)
        mask[4:12, 5:20] = 15  # person
        mask[12:14, 5:20] = 255  # void border
        mask[0, 0] = k % 21
        (root / "SegmentationClass" / f"{name}.png").write_bytes(_palette_png(mask, _voc_palette()))
        masks[name] = mask
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(names[:-1]) + "\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text(names[-1] + "\n")
    return masks


def test_palette_mask_decodes_to_indices(tmp_path):
    idx = np.array([[0, 1, 15], [255, 20, 0]], np.uint8)
    assert np.array_equal(decode_mask(_palette_png(idx, _voc_palette())), idx)


def test_voc_folder_split_labels_and_letterbox(tmp_path):
    masks = _write_voc(tmp_path, ["a", "b", "c"])
    train = SegmentationFolder(tmp_path, "train", size=32)
    val = SegmentationFolder(tmp_path, "val", size=32)
    assert len(train) == 2 and len(val) == 1
    assert train.labels == list(VOC_CLASSES)
    img, mask = val[0]
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and mask.shape == (32, 32) and mask.dtype == np.uint8
    # 24x40 -> zero-pad to 40x40 (bottom), then 32x32: rows below 24*32/40 = 19.2 are padding
    assert (mask[20:] == 255).all() and (img[20:] == 0).all()
    assert np.array_equal(mask, letterbox_mask(masks["c"], 32))
    assert set(np.unique(mask)) <= {0, 2, 15, 255}
    assert (mask == 15).sum() > 0 and (mask[:19] == 255).sum() > 0  # void border kept as ignore


def test_images_masks_layout_without_imagesets(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(12):
        cv2.imwrite(str(tmp_path / "images" / f"im{i:02d}.jpg"), np.full((32, 32, 3), 100, np.uint8))
        m = np.zeros((32, 32), np.uint8)
        m[8:16, 8:16] = 1 + i % 3
        cv2.imwrite(str(tmp_path / "masks" / f"im{i:02d}.png"), m)
    (tmp_path / "labels.txt").write_text("background\nhat\nshoe\nbag\n")
    train, val = SegmentationFolder(tmp_path, "train", 32), SegmentationFolder(tmp_path, "val", 32)
    assert len(train) == 11 and len(val) == 1 and val.pairs[0][0].name == "im09.jpg"  # every tenth
    assert train.labels == ["background", "hat", "shoe", "bag"]
    assert np.unique(val[0][1]).tolist() == [0, 1]


def test_labels_inferred_from_masks_when_not_named(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(10):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), np.zeros((16, 16, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "masks" / f"{i}.png"), np.full((16, 16), i % 4, np.uint8))
    assert SegmentationFolder(tmp_path, "train", 16).labels == ["background", "class_1", "class_2", "class_3"]


def test_wrong_folders_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        SegmentationFolder(tmp_path / "nope")
    with pytest.raises(UserError, match="JPEGImages"):
        SegmentationFolder(tmp_path)
    with pytest.raises(UserError, match="neither 'scenes'"):
        build_sources(str(tmp_path / "missing"), 32, 1, 1)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(UserError, match="no train pairs"):
        SegmentationFolder(tmp_path)


def test_class_beyond_labels_is_a_user_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "x.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "masks" / "x.png"), np.full((8, 8), 5, np.uint8))
    (tmp_path / "labels.txt").write_text("background\nthing\n")
    with pytest.raises(UserError, match="class 5"):
        SegmentationFolder(tmp_path, "train", 8)[0]


def test_torch_dataset_normalizes_like_serving(tmp_path):
    _write_voc(tmp_path, ["a", "b", "c"])
    train, _ = build_sources(str(tmp_path), 32, 0, 0)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    ds = SegmentationDataset(train, mean, std, cache=False)
    x, y = ds[1]
    img, mask = train[1]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32)
    assert y.dtype == torch.int64 and y.shape == (32, 32)
    assert np.array_equal(x.numpy(), normalize(img, mean, std)[0])
    assert np.array_equal(y.numpy(), mask.astype(np.int64))
