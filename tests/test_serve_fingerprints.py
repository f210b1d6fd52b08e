"""seedlock.v1.Fingerprints end to end on tiny trained DCGANs: seed-locked
Generate (served == plain ONNX Runtime + core functions, byte for byte),
Compare == core.similarity.compare_sets, INVALID_ARGUMENT / NOT_FOUND for bad
requests with the server still answering after each, and the CLI."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from conftest import run_cli
from serving_fixtures import make_segmenter_repository

from seedlock.clients.errors import InvalidArgument, NotFound
from seedlock.clients.fingerprints import FingerprintsClient
from seedlock.core.fingerprints import FingerprintSpec, latents, select_generator, to_uint8
from seedlock.core.imaging import decode_image, encode_png
from seedlock.core.manifest import ManifestError
from seedlock.core.repository import load_version
from seedlock.core.similarity import compare_sets
from seedlock.serve.fingerprints import MAX_SET_IMAGES
from seedlock.serve.server import start_server

ALL_MODEL, Q_MODEL = "fingerprint-gan", "fingerprint-q"
# A few steps at a high learning rate: enough to move the generator off its
# near-constant initial output, so different seeds give different pixels.
TINY = dict(
    latent_dim=16, g_width=8, d_width=4, batch_size=4, n_per_quality=6, lr=0.005,
    samples=8, log_every=5, threads=1, progress=False,
)  # fmt: skip


@pytest.fixture(scope="session")
def repo(tmp_path_factory):
    """An all-quality and a per-quality (Q1, Q5) tiny DCGAN, exported, plus a segmenter."""
    import torch

    from seedlock.export.fingerprint import export_generator
    from seedlock.train.fingerprint_gan import FingerprintGANConfig, train_fingerprint_gan

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("fpserve")
        repository = root / "repository"
        for name, extra in ((ALL_MODEL, dict(steps=20)), (Q_MODEL, dict(steps=10, mode="each", qualities=["Q1", "Q5"]))):
            run = train_fingerprint_gan(FingerprintGANConfig(out=str(root / name), **TINY, **extra), log=lambda _: None)
            export_generator(run, repository, name=name, log=lambda _: None)
    finally:
        torch.set_num_threads(prev)
    make_segmenter_repository(repository, name="segmenter")  # a model of another task beside them
    return repository


@pytest.fixture(scope="module")
def server(repo):
    running = start_server(repo, threads=1, workers=8, max_queue=32)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def client(server):
    with FingerprintsClient(server.address, timeout=60) as c:
        yield c


def expected_pngs(repo, name: str, count: int, seed: int, generator: int = 0) -> list[bytes]:
    """The pipeline by hand: core functions + a plain ONNX Runtime session."""
    mv = load_version(repo, name)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(str(mv.path()), sess_options=so, providers=["CPUExecutionProvider"])
    z = latents(seed, count, mv.manifest.preprocess["latent_dim"])
    images = to_uint8(select_generator(session.run(["image"], {"latent": z})[0], generator))
    return [encode_png(im) for im in images]


def procedural(count: int, size: int = 64) -> np.ndarray:
    from seedlock.train.data.fingerprints import make_fingerprints

    return np.concatenate([make_fingerprints(5, q, count // 2, size) for q in ("Q1", "Q3")])


# --------------------------------------------------------------------------- Generate


def test_same_seed_gives_identical_bytes_equal_to_in_process_ort(repo, client):
    first = client.generate_raw(8, seed=3, model=ALL_MODEL, request_id="r1")
    second = client.generate_raw(8, seed=3, model=ALL_MODEL)
    assert len(first.images_png) == 8
    assert list(first.images_png) == list(second.images_png)
    assert list(first.images_png) == expected_pngs(repo, ALL_MODEL, 8, 3)
    manifest = load_version(repo, ALL_MODEL).manifest
    assert (first.seed, first.quality, first.request_id) == (3, "all", "r1")
    assert (first.model_name, first.model_version, first.model_digest) == (ALL_MODEL, 1, manifest.digest)


def test_different_seeds_differ_and_an_unset_seed_is_echoed(client):
    a = client.generate(4, seed=3, model=ALL_MODEL).images
    b = client.generate(4, seed=4, model=ALL_MODEL).images
    assert not np.array_equal(a, b)
    assert len({im.tobytes() for im in a}) == 4  # one batch, four different latents
    fresh = client.generate(2, model=ALL_MODEL)
    again = client.generate(2, seed=fresh.seed, model=ALL_MODEL)
    assert fresh.images_png == again.images_png


def test_images_are_grey_pngs_of_the_manifest_size(repo, client):
    size = load_version(repo, ALL_MODEL).manifest.postprocess["image_size"]
    result = client.generate(3, seed=1, model=ALL_MODEL)
    assert (result.width, result.height) == (size, size)
    for png in result.images_png:
        raw = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert raw.shape == (size, size) and raw.dtype == np.uint8  # single channel
    assert result.images.shape == (3, size, size)


def test_per_quality_model_generates_the_quality_asked_for(repo, client):
    q1 = client.generate(4, seed=7, quality="Q1", model=Q_MODEL)
    q5 = client.generate(4, seed=7, quality="Q5", model=Q_MODEL)
    assert (q1.quality, q5.quality) == ("Q1", "Q5")
    assert q1.images_png == expected_pngs(repo, Q_MODEL, 4, 7, generator=0)
    assert q5.images_png == expected_pngs(repo, Q_MODEL, 4, 7, generator=1)
    assert q1.images_png != q5.images_png


def test_concurrent_requests_get_the_answers_they_get_alone(client):
    seeds = list(range(10, 18))
    alone = {s: client.generate_raw(4, seed=s, model=ALL_MODEL).images_png for s in seeds}
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda s: client.generate_raw(4, seed=s, model=ALL_MODEL).images_png, seeds * 2))
    assert together == [alone[s] for s in seeds * 2]


def test_generate_requests_batched_together_get_the_answers_they_get_alone(server, client):
    """Requests queued behind a busy model go as one call of several requests'
    rows; each still gets the bytes it gets alone."""
    from test_serve_errors import Held, in_thread

    asks = [(1, 20), (2, 21), (3, 22), (1, 23)]  # (count, seed): 7 rows, under max_batch_size 8
    alone = [client.generate_raw(n, seed=s, model=ALL_MODEL).images_png for n, s in asks]
    with Held(server, ALL_MODEL) as held:
        first = in_thread(client.generate_raw, 2, seed=19, model=ALL_MODEL)
        assert held.running.wait(30)
        waiting = [in_thread(client.generate_raw, n, seed=s, model=ALL_MODEL) for n, s in asks]
        held.wait_queued(len(asks))
        held.release()
        for t, _ in [first, *waiting]:
            t.join(60)
    assert held.calls[:2] == [2, 7], held.calls  # the four queued requests ran as one call
    assert [out[0].images_png for _, out in waiting] == alone


def test_a_count_over_max_batch_size_runs_as_several_calls_with_the_same_images(repo, server, client):
    scheduler = server.registry.scheduler(server.registry.get(ALL_MODEL))
    limit = scheduler.batching.max_batch_size
    assert limit == 8
    calls = scheduler.counters.calls
    result = client.generate_raw(2 * limit + 3, seed=5, model=ALL_MODEL)
    assert scheduler.counters.calls - calls == 3
    assert list(result.images_png) == expected_pngs(repo, ALL_MODEL, 2 * limit + 3, 5)  # one in-process call of 19


# --------------------------------------------------------------------------- Compare


def test_compare_matches_core_similarity(client):
    served = client.generate(6, seed=3, model=ALL_MODEL).images
    actual = procedural(8)
    result = client.compare(actual, served)
    assert result.similarity == compare_sets(actual, served)
    assert result.binarize_threshold == 128
    at_100 = client.compare([encode_png(im) for im in actual], list(served), threshold=100)
    assert at_100.similarity == compare_sets(actual, served, threshold=100)


def test_compare_turns_colour_into_grey(client):
    grey = procedural(4)
    rgb = [encode_png(np.repeat(im[:, :, None], 3, axis=2)) for im in grey]  # an RGB PNG of a grey image
    assert client.compare(rgb, grey).similarity == compare_sets(grey, grey)


def test_compare_needs_no_fingerprint_model(tmp_path):
    make_segmenter_repository(tmp_path, name="segmenter")
    grey = procedural(2)
    with start_server(tmp_path, threads=1, workers=2) as running, FingerprintsClient(running.address, timeout=30) as c:
        assert c.compare(grey, grey).similarity == compare_sets(grey, grey)
        with pytest.raises(InvalidArgument, match="this server has no fingerprint model"):
            c.generate(2, seed=1)


# --------------------------------------------------------------------------- errors


def _pngs(n: int, size: int = 64) -> list[bytes]:
    return [encode_png(im) for im in procedural(n, size)]


GOOD = _pngs(2)
BAD_REQUESTS = {
    "count 0": (lambda c: c.generate(0, seed=1, model=ALL_MODEL), "count must be 1 to 64"),
    "count over the limit": (lambda c: c.generate(65, seed=1, model=ALL_MODEL), "count must be 1 to 64 images per request for this model, got 65"),
    "unknown quality": (lambda c: c.generate(2, seed=1, quality="Q9", model=Q_MODEL), "unknown quality 'Q9'; this model generates Q1, Q5"),
    "no quality for a per-quality model": (lambda c: c.generate(2, seed=1, model=Q_MODEL), "choose a quality: Q1, Q5"),
    "a quality from an all-quality model": (lambda c: c.generate(2, seed=1, quality="Q1", model=ALL_MODEL), "cannot generate 'Q1' alone"),
    "no model named, two served": (lambda c: c.generate(2, seed=1), "several fingerprint models; name one"),
    "a model of another task": (lambda c: c.generate(2, seed=1, model="segmenter"), "not a fingerprint model"),
    "undecodable image": (lambda c: c.compare(GOOD, [GOOD[0], b"not an image"]), "set_b image 1: could not decode 12 bytes"),
    "mismatched sizes": (lambda c: c.compare(GOOD, [encode_png(np.zeros((32, 48), np.uint8))]), "set_b image 0 is 48x32 but set_a image 0 is 64x64"),
    "mismatched sizes within a set": (lambda c: c.compare([GOOD[0], encode_png(np.zeros((64, 60), np.uint8))], GOOD), "set_a image 1 is 60x64"),
    "empty set": (lambda c: c.compare([], GOOD), "set_a is empty"),
    "too many images": (lambda c: c.compare(GOOD, [GOOD[0]] * (MAX_SET_IMAGES + 1)), f"set_b has {MAX_SET_IMAGES + 1} images; the limit is {MAX_SET_IMAGES}"),
    "too much work": (lambda c: c.compare([encode_png(np.full((1024, 1024), 255, np.uint8))] * 65, [encode_png(np.full((1024, 1024), 255, np.uint8))] * 64), "send fewer or smaller images"),
    "threshold 0": (lambda c: c.compare(GOOD, GOOD, threshold=0), "binarize_threshold must be 1 to 255"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_invalid_argument_and_the_server_goes_on(client, case):
    call, message = BAD_REQUESTS[case]
    with pytest.raises(InvalidArgument) as info:
        call(client)
    assert message in info.value.message, info.value.message
    assert len(client.generate(2, seed=5, model=ALL_MODEL).images_png) == 2
    assert client.compare(GOOD, GOOD).similarity["pairs"] == 4


def test_unknown_model_or_version_is_not_found(client):
    with pytest.raises(NotFound, match="unknown model 'nope'"):
        client.generate(2, seed=1, model="nope")
    with pytest.raises(NotFound, match="has no version 9"):
        client.generate(2, seed=1, model=ALL_MODEL, version=9)


def test_unusable_manifest_is_refused_at_load(repo):
    manifest = load_version(repo, Q_MODEL).manifest
    FingerprintSpec.from_manifest(manifest)
    bad = replace(manifest, preprocess={**manifest.preprocess, "latent_dim": 99})
    with pytest.raises(ManifestError, match="must be float32 \\(-1, 99\\)"):
        FingerprintSpec.from_manifest(bad)
    fewer = replace(manifest, postprocess={**manifest.postprocess, "generators": ["Q1"]}, labels=["Q1"])
    with pytest.raises(ManifestError, match="output 'image' must be"):
        FingerprintSpec.from_manifest(fewer)


def test_server_refuses_a_model_its_spec_rejects(repo, tmp_path):
    """The server checks every fingerprint model against FingerprintSpec at start-up (through the task table)."""
    import shutil

    from seedlock.core.sessions import SessionConfig
    from seedlock.serve.repository import load_repository

    shutil.copytree(repo / ALL_MODEL, tmp_path / ALL_MODEL)
    path = tmp_path / ALL_MODEL / "1" / "manifest.json"
    data = json.loads(path.read_text())
    data["preprocess"]["latent_stream"] = 5
    path.write_text(json.dumps(data))
    registry = load_repository(tmp_path, SessionConfig(intra_op_threads=1))
    assert ALL_MODEL not in registry.runtimes
    assert "latent_stream 5 is not supported" in registry.refused[ALL_MODEL][1]


# --------------------------------------------------------------------------- CLI


def test_cli_generate_twice_then_compare(server, tmp_path):
    target = ["--server", server.address, "--model", ALL_MODEL]
    for folder in ("a", "b"):
        proc = run_cli("client", "fingerprints", "generate", "--count", "5", "--seed", "3", "--out", str(tmp_path / folder), *target, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "wrote 5 fingerprints (64x64 grey PNG)" in proc.stdout and "seed 3, quality all" in proc.stdout
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == [f"fp_{i:03d}.png" for i in range(5)]
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)

    real = tmp_path / "real"
    real.mkdir()
    actual = procedural(4)
    for i, im in enumerate(actual):
        (real / f"real_{i}.png").write_bytes(encode_png(im))
    out_json = tmp_path / "cmp.json"
    proc = run_cli("client", "fingerprints", "compare", str(real), str(tmp_path / "a"), "--server", server.address,
                   "--json", str(out_json), timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Mean Hamming distance" in proc.stdout and "Intersection over union" in proc.stdout and "20 pairs" in proc.stdout
    served = np.stack([decode_image((tmp_path / "a" / n).read_bytes())[..., 0] for n in names])
    want = compare_sets(actual, served)
    got = json.loads(out_json.read_text())
    assert {k: got[k] for k in want} == json.loads(json.dumps(want))


def test_cli_user_errors_are_one_line(server, tmp_path):
    # over the model's limit: --count's own range is the wire's (0 is refused by the flag, tests/test_cli_errors.py)
    proc = run_cli("client", "fingerprints", "generate", "--count", "65", "--out", str(tmp_path / "x"),
                   "--server", server.address, "--model", ALL_MODEL, timeout=120)  # fmt: skip
    assert proc.returncode != 0
    assert "INVALID_ARGUMENT: count must be 1 to 64" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()
    proc = run_cli("client", "fingerprints", "compare", str(tmp_path / "missing"), str(tmp_path), "--server", server.address, timeout=120)
    assert proc.returncode != 0 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
