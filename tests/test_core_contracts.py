"""Manifest, repository reading, image codecs and the seeded stream."""

import json

import cv2
import numpy as np
import pytest

from seedlock.core import imaging
from seedlock.core.manifest import GraphSpec, Manifest, ManifestError, TensorSpec, verify_files
from seedlock.core.repository import load_version, model_names, version_numbers
from seedlock.core.rng import SeedStream
from seedlock.export.repository import config_pbtxt, write_model_version


def make_manifest(name="m", version=1) -> Manifest:
    return Manifest(
        name=name,
        version=version,
        task="segmentation",
        graphs={"model": GraphSpec("model.onnx", [TensorSpec("image", "float32", [-1, 3, -1, -1])], [TensorSpec("logits", "float32", [-1, 4, -1, -1])])},
        preprocess={"size": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "divisor": 8},
        labels=["background", "a", "b", "c"],
        seed=7,
    )


def test_manifest_round_trip_and_canonical_json(tmp_path):
    m = make_manifest()
    path = m.save(tmp_path)
    again = Manifest.load(path)
    assert again == m
    assert again.to_json() == m.to_json() == path.read_text()
    assert json.loads(path.read_text())["graphs"]["model"]["inputs"][0]["shape"] == [-1, 3, -1, -1]
    assert len(m.digest) == 64


def test_manifest_errors(tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 1, "name": "x"}))
    with pytest.raises(ManifestError, match="malformed"):
        Manifest.load(tmp_path)
    with pytest.raises(ManifestError, match="unsupported dtype"):
        TensorSpec("x", "complex64", [1])


def test_write_and_load_version_verifies_digests(tmp_path):
    folder = write_model_version(tmp_path, make_manifest(), {"model.onnx": b"graph-bytes"})
    assert folder == tmp_path / "m" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.onnx"]
    assert 'platform: "onnxruntime_onnx"' in (tmp_path / "m" / "config.pbtxt").read_text()
    assert model_names(tmp_path) == ["m"] and version_numbers(tmp_path, "m") == [1]
    mv = load_version(tmp_path, "m")
    assert mv.manifest.files["model.onnx"] == __import__("hashlib").sha256(b"graph-bytes").hexdigest()
    # tampering is detected
    (folder / "model.onnx").write_bytes(b"graph-bytez")
    with pytest.raises(ManifestError, match="does not match"):
        load_version(tmp_path, "m")
    # half-written: file missing
    (folder / "model.onnx").unlink()
    with pytest.raises(ManifestError, match="missing"):
        verify_files(mv.manifest, folder)


def test_write_refuses_existing_version_and_leaves_no_staging(tmp_path):
    write_model_version(tmp_path, make_manifest(), {"model.onnx": b"a"})
    from seedlock.core.errors import UserError

    with pytest.raises(UserError, match="already exists"):
        write_model_version(tmp_path, make_manifest(), {"model.onnx": b"b"})
    with pytest.raises(ValueError, match="not among the files"):
        write_model_version(tmp_path, make_manifest(version=2), {"other.bin": b"b"})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "config.pbtxt"]


def test_load_version_errors(tmp_path):
    write_model_version(tmp_path, make_manifest(), {"model.onnx": b"a"})
    with pytest.raises(ManifestError, match="no version 3"):
        load_version(tmp_path, "m", 3)
    with pytest.raises(ManifestError, match="no model"):
        load_version(tmp_path, "nope")


def test_config_pbtxt_is_a_triton_model_config_with_batching():
    from seedlock.core import model_config

    manifest = make_manifest()
    config = model_config.parse(config_pbtxt(manifest))
    assert config.name == "m" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 8
    # With max_batch_size > 0, Triton's dims leave out the batch axis.
    assert [(t.name, list(t.dims)) for t in config.input] == [("image", [3, -1, -1])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("logits", [4, -1, -1])]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.parameters["intra_op_thread_count"].string_value == str(manifest.intra_op_threads)
    settings = model_config.scheduling(config, manifest)
    assert (settings.max_batch_size, settings.preferred_batch_sizes, settings.dynamic_batching) == (8, (4, 8), True)
    # The same text through Triton's own generated ModelConfig, where tritonclient is installed.
    triton = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    theirs = text_format.Parse(config_pbtxt(manifest), triton.ModelConfig())
    assert theirs.max_batch_size == 8 and list(theirs.input[0].dims) == [3, -1, -1]


def test_config_pbtxt_errors_name_the_file_and_the_field():
    from seedlock.core import model_config
    from seedlock.core.manifest import ManifestError

    manifest = make_manifest()
    with pytest.raises(ManifestError, match="x/config.pbtxt: not a Triton model configuration"):
        model_config.parse("max_batch_size: many", "x/config.pbtxt")
    with pytest.raises(ManifestError, match="preferred_batch_size \\[16\\] outside 1..max_batch_size \\(8\\)"):
        model_config.scheduling(model_config.parse("max_batch_size: 8 dynamic_batching { preferred_batch_size: 16 }"), manifest)
    with pytest.raises(ManifestError, match="name 'other' is not the model's folder name 'm'"):
        model_config.scheduling(model_config.parse('name: "other"'), manifest)
    # Fields seedlock does not model are skipped, as Triton extensions are.
    assert model_config.parse("max_batch_size: 4 optimization { priority: PRIORITY_MAX }").max_batch_size == 4


def test_image_codec_round_trip_and_errors():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (13, 21, 3), dtype=np.uint8)
    png = imaging.encode_png(img)
    assert imaging.encode_png(img) == png  # deterministic bytes
    np.testing.assert_array_equal(imaging.decode_image(png), img)
    gray = cv2.imencode(".png", img[..., 0])[1].tobytes()
    assert imaging.decode_image(gray).shape == (13, 21, 3)
    with pytest.raises(imaging.ImageError, match="empty"):
        imaging.decode_image(b"")
    with pytest.raises(imaging.ImageError, match="could not decode"):
        imaging.decode_image(b"\x89PNG garbage")


@pytest.mark.parametrize("h,w", [(37, 53), (64, 64), (100, 20)])
def test_letterbox_maps_mask_back_to_original_size(h, w):
    img = np.full((h, w, 3), 200, np.uint8)
    square, box = imaging.letterbox(img, 32)
    assert square.shape == (32, 32, 3)
    mask = np.zeros((32, 32), np.uint8)
    mask[:16] = 1
    back = imaging.unletterbox_mask(mask, box)
    assert back.shape == (h, w)
    side = max(h, w)
    assert back[0, 0] == 1 and (back[min(h - 1, side // 2 + 2):, :] == 0).all()


def test_normalize_layout():
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 255
    x = imaging.normalize(img, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    assert x.shape == (1, 3, 4, 5) and x.dtype == np.float32
    assert np.allclose(x[0, 0], 1.0) and np.allclose(x[0, 1], -1.0)


def test_seed_stream_is_counter_based_and_reproducible():
    a, b = SeedStream(77, 3), SeedStream(77, 3)
    np.testing.assert_array_equal(a.normal((5, 4)), b.normal((5, 4)))
    assert not np.array_equal(SeedStream(77, 3).uniform((8,)), SeedStream(77, 4).uniform((8,)))
    assert not np.array_equal(SeedStream(77).uniform((8,)), SeedStream(78).uniform((8,)))
    u = SeedStream(1).uniform((20000,))
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    z = SeedStream(2).normal((20000,))
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    ints = SeedStream(3).integers(0, 5, (1000,))
    assert set(ints.tolist()) == {0, 1, 2, 3, 4}
    assert sorted(SeedStream(4).permutation(10).tolist()) == list(range(10))
    # pinned values: served answers depend on this stream, so it must never change
    assert int(SeedStream(0).raw(1)[0]) == 213000021201967259
    assert float(SeedStream(7, 1).uniform()) == 0.8824668302545412
    assert float(SeedStream(7, 1).normal()) == -1.4074039469957724
    with pytest.raises(ValueError):
        SeedStream(-1)
