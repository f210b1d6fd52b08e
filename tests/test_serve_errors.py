"""Bad requests get the right status and a message a person can act on, and
the server answers the next good request correctly (DESIGN.md, Errors)."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
from serving_fixtures import make_segmenter_repository, sample_png, write_plain_model

from seedlock.clients import InferenceClient, SegmentationClient
from seedlock.clients.base import NO_RETRY
from seedlock.clients.errors import (
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    SeedlockError,
)
from seedlock.serve import segmentation as seg_module
from seedlock.serve.errors import ServeError
from seedlock.serve.server import start_server

MAX_MESSAGE = 256 * 1024
GOOD_IMAGE = sample_png(37, 53, seed=1)
GOOD_TENSOR = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("errrepo")
    make_segmenter_repository(repo, name="segmenter")
    make_segmenter_repository(repo, name="other", num_classes=3, seed=1)
    write_plain_model(repo, "plain")  # a task without a service: KServe v2 only
    running = start_server(repo, intra_op_threads=1, workers=4, max_inflight=2, max_message_bytes=MAX_MESSAGE)
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def seg(server):
    with SegmentationClient(server.address, timeout=30, retry=NO_RETRY) as c:
        yield c


@pytest.fixture(scope="module")
def v2(server):
    with InferenceClient(server.address, timeout=30, retry=NO_RETRY) as c:
        yield c


@pytest.fixture(scope="module")
def good(seg, v2):
    """Reference answers taken before any bad request."""
    return seg.segment(GOOD_IMAGE, model="segmenter").mask_png, v2.infer("segmenter", {"image": GOOD_TENSOR})["logits"]


def still_good(seg, v2, good) -> None:
    assert seg.segment(GOOD_IMAGE, model="segmenter").mask_png == good[0]
    assert v2.infer("segmenter", {"image": GOOD_TENSOR})["logits"].tobytes() == good[1].tobytes()


def expect(exc_type, code, *fragments):
    """pytest.raises plus checks on the status code and the server's message."""

    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(exc_type)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            err = self.info.value
            assert err.code == code, f"{err.code} != {code}: {err.message}"
            for fragment in fragments:
                assert fragment in err.message, f"{fragment!r} not in {err.message!r}"
            return handled

    return _Check()


@pytest.mark.parametrize(
    "data,fragment",
    [
        (b"this is not an image at all", "could not decode"),
        (b"", "empty image"),
        (GOOD_IMAGE[: len(GOOD_IMAGE) // 3], "could not decode"),
    ],
    ids=["undecodable", "empty", "truncated"],
)
def test_bad_images(seg, v2, good, data, fragment):
    with expect(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, fragment):
        seg.segment(data, model="segmenter")
    still_good(seg, v2, good)


@pytest.mark.parametrize(
    "inputs,fragments",
    [
        ({"image": np.zeros((3, 8, 8), np.float32)}, ["shape [3, 8, 8]", "[-1, 3, -1, -1]"]),
        ({"image": np.zeros((1, 4, 8, 8), np.float32)}, ["shape [1, 4, 8, 8]"]),
        ({"image": np.zeros((1, 3, 8, 8), np.float64)}, ["datatype FP64", "expects FP32"]),
        ({"image": np.zeros((1, 3, 8, 8), np.int32)}, ["datatype INT32"]),
        ({"img": np.zeros((1, 3, 8, 8), np.float32)}, ["no input 'img'", "image"]),
        ({}, ["missing input(s) image"]),
    ],
    ids=["rank", "channels", "fp64", "int32", "name", "missing"],
)
def test_wrong_tensors(seg, v2, good, inputs, fragments):
    with expect(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, *fragments):
        v2.infer("segmenter", inputs)
    still_good(seg, v2, good)


def test_raw_contents_of_the_wrong_size_and_unknown_output(seg, v2, good):
    request = InferenceClient.build_request("segmenter", {"image": GOOD_TENSOR})
    request.raw_input_contents[0] = request.raw_input_contents[0][:-4]
    with expect(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "raw contents are 764 bytes", "needs 768"):
        v2._call(v2._stub.ModelInfer, request, 30, "ModelInfer")
    with expect(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "no output(s) probs"):
        v2.infer("segmenter", {"image": GOOD_TENSOR}, outputs=["probs"])
    still_good(seg, v2, good)


def test_unknown_model_and_version(seg, v2, good):
    with expect(NotFound, grpc.StatusCode.NOT_FOUND, "unknown model 'nope'", "segmenter"):
        seg.segment(GOOD_IMAGE, model="nope")
    with expect(NotFound, grpc.StatusCode.NOT_FOUND, "unknown model 'nope'"):
        v2.infer("nope", {"image": GOOD_TENSOR})
    with expect(NotFound, grpc.StatusCode.NOT_FOUND, "no version 9", "ready: [1]"):
        seg.segment(GOOD_IMAGE, model="segmenter", version=9)
    with expect(NotFound, grpc.StatusCode.NOT_FOUND, "no version 3"):
        v2.infer("segmenter", {"image": GOOD_TENSOR}, version="3")
    with expect(NotFound, grpc.StatusCode.NOT_FOUND, "unknown model 'nope'"):
        v2.model_metadata("nope")
    with expect(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "'abc' is not a number"):
        v2.infer("segmenter", {"image": GOOD_TENSOR}, version="abc")
    still_good(seg, v2, good)


def test_ambiguous_or_wrong_task_model(server, seg, v2, good):
    with expect(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "several segmentation models", "other, segmenter"):
        seg.segment(GOOD_IMAGE)  # no model named, two segmenters served
    with expect(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "'tensors' model, not a segmentation model"):
        seg.segment(GOOD_IMAGE, model="plain")
    from seedlock.core.sessions import SessionConfig, create_session

    plain = create_session(server.registry.repository / "plain" / "1" / "model.onnx", SessionConfig(intra_op_threads=1))
    want = plain.run(["logits"], {"image": GOOD_TENSOR})[0]
    assert v2.infer("plain", {"image": GOOD_TENSOR})["logits"].tobytes() == want.tobytes()
    still_good(seg, v2, good)


def test_oversize_payload(seg, v2, good):
    big = sample_png(400, 400, seed=3)
    assert len(big) > MAX_MESSAGE
    with expect(ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"):
        seg.segment(big, model="segmenter")
    with expect(ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED):
        v2.infer("segmenter", {"image": np.zeros((1, 3, 256, 256), np.float32)})
    still_good(seg, v2, good)


def test_inflight_limit_answers_resource_exhausted_at_once(server, seg, v2, good):
    slots = server.registry.admission["segmenter"]._slots
    held = 0
    try:
        while slots.acquire(blocking=False):  # take every slot, as long requests would
            held += 1
            assert held <= 2
        assert held == 2
        with expect(ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, "2 requests in flight"):
            seg.segment(GOOD_IMAGE, model="segmenter")
        with expect(ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, "in flight"):
            v2.infer("segmenter", {"image": GOOD_TENSOR})
        # Other models have their own bound.
        assert seg.segment(GOOD_IMAGE, model="other").model_name == "other"
    finally:
        for _ in range(held):
            slots.release()
    still_good(seg, v2, good)


def test_deadline_exceeded_and_the_model_is_not_run(server, seg, v2, good, monkeypatch):
    """A request held up past its deadline is answered DEADLINE_EXCEEDED and
    the server skips the model run rather than compute an answer nobody reads."""
    release, finished = threading.Event(), threading.Event()
    contexts: list = []
    outcomes: list[str] = []
    real_decode, real_check = seg_module.decode_image, seg_module.check_deadline

    def slow_decode(data):
        release.wait(timeout=30)
        return real_decode(data)

    def spy_check(context):
        contexts.append(context)
        try:
            real_check(context)
        except ServeError as exc:
            outcomes.append(exc.code.name)
            finished.set()
            raise
        outcomes.append("ok")

    runtime = server.registry.get("segmenter")
    runs = []
    real_run = runtime.run
    monkeypatch.setattr(seg_module, "decode_image", slow_decode)
    monkeypatch.setattr(seg_module, "check_deadline", spy_check)
    monkeypatch.setattr(runtime, "run", lambda *a, **k: runs.append(1) or real_run(*a, **k))
    try:
        with expect(DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED):
            seg.segment(GOOD_IMAGE, model="segmenter", timeout=1.0)
        assert contexts, "the request never reached the servicer"
        # The server's deadline (from the grpc-timeout header) ends a moment
        # after the client's; release the request only once it has.
        for _ in range(500):
            if contexts[0].time_remaining() <= 0:
                break
            threading.Event().wait(0.01)
    finally:
        release.set()
    assert finished.wait(timeout=30), f"the server never refused: {outcomes} {runs}"
    # Normally admitted on arrival and refused before the model run; on a very
    # slow machine the arrival check may already refuse it. Either way: no run.
    assert outcomes[-1] in ("DEADLINE_EXCEEDED", "CANCELLED") and outcomes[:-1] in ([], ["ok"])
    assert runs == []
    monkeypatch.undo()
    still_good(seg, v2, good)


def test_errors_are_python_exceptions_with_the_servers_message(seg):
    with pytest.raises(ValueError) as info:  # InvalidArgument is a ValueError too
        seg.segment(b"junk", model="segmenter")
    assert isinstance(info.value, SeedlockError)
    assert "could not decode" in str(info.value)
    with pytest.raises(LookupError):
        seg.segment(GOOD_IMAGE, model="nope")


def test_a_request_without_deadline_waits_for_its_turn_and_is_answered(server, v2, good):
    """tritonclient sets no deadline by default; gRPC then reports a huge
    time_remaining(). Waiting behind a busy model must not turn that into an
    error (it was INTERNAL: OverflowError from the lock's timeout)."""
    tc = pytest.importorskip("tritonclient.grpc")
    admission = server.registry.admission["segmenter"]
    gates = []
    while admission._gate.acquire(blocking=False):  # every compute turn taken, as by long requests
        gates.append(1)
    answers: list = []

    def call() -> None:
        client = tc.InferenceServerClient(server.address)  # default options: no client timeout
        x = tc.InferInput("image", list(GOOD_TENSOR.shape), "FP32")
        x.set_data_from_numpy(GOOD_TENSOR)
        try:
            answers.append(client.infer("segmenter", [x]).as_numpy("logits"))
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            answers.append(exc)
        finally:
            client.close()

    worker = threading.Thread(target=call)
    worker.start()
    try:
        free = admission.max_inflight
        for _ in range(2000):  # until the request is admitted and waiting for a turn
            if admission._slots._value < free:
                break
            worker.join(0.005)
        assert admission._slots._value < free and not answers, answers
    finally:
        for _ in gates:
            admission._gate.release()
    worker.join(30)
    assert len(answers) == 1 and not isinstance(answers[0], Exception), answers
    assert answers[0].tobytes() == good[1].tobytes()
    still_good_after = v2.infer("segmenter", {"image": GOOD_TENSOR})["logits"]
    assert still_good_after.tobytes() == good[1].tobytes()
