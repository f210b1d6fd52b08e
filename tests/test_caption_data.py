"""Captioning data: procedural scenes, vocabulary, Flickr8k / COCO loaders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seedlock.core.errors import UserError
from seedlock.core.imaging import write_png
from seedlock.core.vocab import END_ID, PAD_ID, START_ID, UNK_ID, Vocabulary, tokenize
from seedlock.train.data.caption_folders import load_caption_file, load_coco, load_flickr8k, load_images
from seedlock.train.data.caption_scenes import COLOURS, SHAPES, caption_scenes, make_caption_scene, make_caption_scene_objects


def test_scenes_are_seed_locked_and_distinct():
    a_img, a_caps = make_caption_scene(3, 7, 48)
    b_img, b_caps = make_caption_scene(3, 7, 48)
    assert a_img.tobytes() == b_img.tobytes() and a_caps == b_caps
    c_img, _ = make_caption_scene(3, 8, 48)
    assert a_img.shape == (48, 48, 3) and a_img.dtype == np.uint8
    assert c_img.tobytes() != a_img.tobytes()


def test_scene_captions_describe_the_objects():
    for index in range(20):
        _, caps, objs = make_caption_scene_objects(0, index, 64)
        assert len(caps) == 5 and len(set(caps)) == 5  # five varied references
        assert 2 <= len(objs) <= 3
        assert len({o.colour for o in objs}) == len(objs)
        for o in objs:
            assert o.shape in SHAPES and o.colour in COLOURS
            assert any(f"{o.colour} {o.shape}" in c for c in caps)
        a, b = objs[0], objs[1]
        rel = caps[1].split(f"a {a.colour} {a.shape} ", 1)[1].rsplit(f" a {b.colour} {b.shape}", 1)[0]
        dx, dy = b.x - a.x, b.y - a.y
        expected = ("to the left of" if dx > 0 else "to the right of") if abs(dx) >= abs(dy) else ("above" if dy > 0 else "below")
        assert rel == expected


def test_scene_colour_is_drawn_where_the_object_is():
    img, _, objs = make_caption_scene_objects(1, 2, 64)
    for o in objs:
        pixel = img[int(round(o.y)), int(round(o.x))].astype(int)
        assert np.abs(pixel - np.array(COLOURS[o.colour])).max() <= 30


def test_caption_scenes_batch():
    imgs, caps = caption_scenes(0, 3, 32, offset=5)
    assert imgs.shape == (3, 32, 32, 3) and len(caps) == 3
    assert caps[0] == make_caption_scene(0, 5, 32)[1]


def test_vocabulary_threshold_ids_and_json():
    caps = ["A red circle.", "a red square", "a blue circle", "a red circle"]
    v = Vocabulary.build(caps, min_count=2)
    assert v.itos[:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    assert v.itos[4:] == ["a", "circle", "red"]  # by count, ties alphabetical; square/blue below threshold
    ids = v.encode("a blue circle")
    assert ids == [START_ID, v.stoi["a"], UNK_ID, v.stoi["circle"], END_ID]
    assert v.decode(ids + [PAD_ID, v.stoi["red"]]) == "a <unk> circle"  # stops at <end>
    assert Vocabulary.from_json(v.to_json()) == v
    assert tokenize("A Big, RED circle!") == ["a", "big", "red", "circle"]
    with pytest.raises(ValueError):
        Vocabulary.from_json('{"tokens": ["x"]}')
    with pytest.raises(ValueError):
        Vocabulary(["a", "b"])


def _images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        write_png(folder / n, np.full((20 + i, 30, 3), 40 * i, np.uint8))


def test_flickr8k_loader(tmp_path):
    _images(tmp_path / "Flicker8k_Dataset", ["1.jpg", "2.jpg"])
    token = tmp_path / "Flickr8k.token.txt"
    token.write_text("1.jpg#0\tA dog runs .\n1.jpg#1\tA brown dog .\n2.jpg#0\tTwo cats sleep .\n\n")
    corpus = load_flickr8k(token)
    assert [p.name for p in corpus.images] == ["1.jpg", "2.jpg"]
    assert corpus.captions == [["A dog runs .", "A brown dog ."], ["Two cats sleep ."]]
    split = tmp_path / "train.txt"
    split.write_text("2.jpg\n")
    assert [p.name for p in load_caption_file(token, split_file=split).images] == ["2.jpg"]
    imgs = load_images(corpus, 32)
    assert imgs.shape == (2, 32, 32, 3) and imgs.dtype == np.uint8


def test_coco_loader(tmp_path):
    _images(tmp_path / "images", ["a.png", "b.png"])
    f = tmp_path / "captions.json"
    f.write_text(json.dumps({
        "images": [{"id": 7, "file_name": "a.png"}, {"id": 9, "file_name": "b.png"}],
        "annotations": [{"image_id": 9, "caption": "b one"}, {"image_id": 7, "caption": "a one"}, {"image_id": 9, "caption": "b two"}],
    }))  # fmt: skip
    corpus = load_caption_file(f)
    assert [p.name for p in corpus.images] == ["a.png", "b.png"]
    assert corpus.captions == [["a one"], ["b one", "b two"]]


def test_loader_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_flickr8k(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("1.jpg#0\tfine\nno tab here\n")
    with pytest.raises(UserError, match=r"bad.txt:2"):
        load_flickr8k(bad)
    missing = tmp_path / "tok.txt"
    missing.write_text("nope.jpg#0\ta caption\n")
    with pytest.raises(UserError, match="missing"):
        load_flickr8k(missing, tmp_path)
    j = tmp_path / "c.json"
    j.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_coco(j)
    j.write_text(json.dumps({"images": []}))
    with pytest.raises(UserError, match="COCO"):
        load_coco(j)
    j.write_text(json.dumps({"images": [{"id": 1, "file_name": "x.png"}], "annotations": [{"image_id": 2, "caption": "c"}]}))
    with pytest.raises(UserError, match="image_id 2"):
        load_coco(j)
    _images(tmp_path / "im", ["x.png"])
    (tmp_path / "im" / "y.png").write_bytes(b"not an image")
    j.write_text(json.dumps({"images": [{"id": 1, "file_name": "y.png"}], "annotations": [{"image_id": 1, "caption": "c"}]}))
    with pytest.raises(UserError, match="y.png"):
        load_images(load_coco(j, tmp_path / "im"), 32)
