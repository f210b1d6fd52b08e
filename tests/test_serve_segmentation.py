"""seedlock.v1.Segmentation through SegmentationClient: sizes, formats,
digest, and byte-identical answers alone and under 16 concurrent clients."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from serving_fixtures import make_segmenter_repository, sample_image, sample_png

from seedlock.clients import SegmentationClient
from seedlock.core.imaging import decode_image, encode_png, letterbox, normalize, unletterbox_mask
from seedlock.core.repository import load_version
from seedlock.serve.server import start_server


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = tmp_path_factory.mktemp("segrepo")
    make_segmenter_repository(path, name="segmenter", num_classes=4, size=32, seed=0)
    make_segmenter_repository(path, name="coarse", num_classes=3, size=24, seed=1, width=6)
    return path


@pytest.fixture(scope="module")
def server(repo):
    running = start_server(repo, threads=1, workers=16, max_queue=32)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def client(server):
    with SegmentationClient(server.address, timeout=30) as c:
        yield c


def expected_mask(repo, name: str, data: bytes) -> np.ndarray:
    """The pipeline by hand: core functions + a plain ONNX Runtime session."""
    mv = load_version(repo, name)
    pre = mv.manifest.preprocess
    session = ort.InferenceSession(str(mv.path()), providers=["CPUExecutionProvider"])
    square, box = letterbox(decode_image(data), pre["size"])
    logits = session.run(["logits"], {"image": normalize(square, pre["mean"], pre["std"])})[0]
    return unletterbox_mask(np.argmax(logits[0], axis=0).astype(np.uint8), box)


def jpeg(height: int, width: int, seed: int = 0) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(sample_image(height, width, seed), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(
    "label,data",
    [
        ("png 37x53", sample_png(37, 53, seed=1)),
        ("png 32x32", sample_png(32, 32, seed=2)),
        ("png 90x17 (downscaled)", sample_png(90, 17, seed=3)),
        ("jpeg 29x61", jpeg(29, 61, seed=4)),
        ("grey png 21x22", encode_png(sample_image(21, 22, seed=5)[..., 0])),
    ],
)
def test_mask_has_the_original_size_and_matches_the_pipeline(repo, client, label, data):
    result = client.segment(data, model="segmenter")
    want = expected_mask(repo, "segmenter", data)
    h, w = decode_image(data).shape[:2]
    assert result.mask.shape == (h, w), label
    assert result.mask.dtype == np.uint8
    assert np.array_equal(result.mask, want), label
    assert result.mask_png == encode_png(want)
    assert result.class_pixel_counts == np.bincount(want.ravel(), minlength=4).tolist()
    assert sum(result.class_pixel_counts) == h * w
    assert result.class_names == ["background", "class1", "class2", "class3"]


def test_digest_and_model_are_echoed(repo, client):
    result = client.segment(sample_png(20, 30), model="coarse", request_id="abc")
    manifest = load_version(repo, "coarse").manifest
    assert (result.model_name, result.model_version) == ("coarse", 1)
    assert result.model_digest == manifest.digest
    assert result.request_id == "abc"
    assert result.class_names == manifest.labels
    assert set(result.timing) == {"decode_ms", "preprocess_ms", "infer_ms", "postprocess_ms", "total_ms"}
    assert all(v >= 0 for v in result.timing.values())


def test_image_from_path_and_array(tmp_path, client):
    img = sample_image(19, 23, seed=9)
    path = tmp_path / "in.png"
    path.write_bytes(encode_png(img))
    by_path = client.segment(path, model="segmenter")
    by_array = client.segment(img, model="segmenter")
    assert by_path.mask_png == by_array.mask_png


def _stable_bytes(response) -> bytes:
    """A response without its timing (the one field that may differ)."""
    copy = type(response)()
    copy.CopyFrom(response)
    copy.ClearField("timing")
    return copy.SerializeToString(deterministic=True)


def test_repeated_requests_give_byte_identical_responses(client):
    data = sample_png(37, 53, seed=1)
    first = client.segment_raw(data, model="segmenter", request_id="r")
    for _ in range(3):
        assert _stable_bytes(client.segment_raw(data, model="segmenter", request_id="r")) == _stable_bytes(first)


def test_sixteen_concurrent_clients_with_mixed_requests_match_sequential_answers(server):
    cases = []
    for i in range(8):
        h, w = 17 + 7 * i, 60 - 5 * i
        data = sample_png(h, w, seed=100 + i) if i % 3 else jpeg(h, w, seed=100 + i)
        cases.append(("segmenter" if i % 2 else "coarse", data, f"case{i}"))
    with SegmentationClient(server.address, timeout=60) as c:
        sequential = [_stable_bytes(c.segment_raw(d, model=m, request_id=r)) for m, d, r in cases]

    rng = random.Random(0)
    work = [rng.randrange(len(cases)) for _ in range(64)]  # 4 requests per client, mixed models and images
    chunks = [work[i::16] for i in range(16)]

    def one_client(indices: list[int]) -> list[tuple[int, bytes]]:
        with SegmentationClient(server.address, timeout=60) as c:
            return [(i, _stable_bytes(c.segment_raw(cases[i][1], model=cases[i][0], request_id=cases[i][2]))) for i in indices]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = [r for chunk in pool.map(one_client, chunks) for r in chunk]
    assert len(results) == 64
    for i, got in results:
        assert got == sequential[i], f"concurrent answer for case {i} differs from the sequential one"
