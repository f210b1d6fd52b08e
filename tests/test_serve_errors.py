"""Bad requests get the right status and a message a person can act on, and
the server answers the next good request correctly (DESIGN.md, Errors)."""

from __future__ import annotations

import logging
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
    running = start_server(repo, threads=1, workers=4, max_queue=2, max_message_bytes=MAX_MESSAGE)
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


class Held:
    """Hold a model's runtime: every graph call blocks until :meth:`release`,
    as long requests would; ``calls`` records the row count of each call."""

    def __init__(self, server, model: str) -> None:
        self.runtime = server.registry.get(model)
        self.scheduler = server.registry.scheduler(self.runtime)
        self.gate, self.running = threading.Event(), threading.Event()
        self.calls: list[int] = []
        self._real = self.runtime.run

    def _run(self, feeds, outputs=None, role="model"):
        self.calls.append(len(next(iter(feeds.values()))))
        self.running.set()
        assert self.gate.wait(60), "the test never released the model"
        return self._real(feeds, outputs, role)

    def __enter__(self) -> "Held":
        self.runtime.run = self._run
        return self

    def release(self) -> None:
        self.gate.set()

    def __exit__(self, *exc) -> None:
        self.gate.set()
        del self.runtime.run  # back to the class's method

    def wait_queued(self, n: int) -> None:
        """Until ``n`` requests wait in the model's queue (polling the server's own state, no sleeps)."""
        pause = threading.Event()
        for _ in range(6000):
            if self.scheduler.queued >= n:
                return
            pause.wait(0.005)
        raise AssertionError(f"{self.scheduler.queued} requests queued, waited for {n}")


def in_thread(fn, *args, **kwargs):
    """Start ``fn`` on a thread; returns (thread, outcomes list: result or exception)."""
    out: list = []

    def run() -> None:
        try:
            out.append(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            out.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_a_full_queue_answers_resource_exhausted_at_once_and_other_models_still_serve(server, seg, v2, good):
    with Held(server, "segmenter") as held:
        first, first_out = in_thread(v2.infer, "segmenter", {"image": GOOD_TENSOR})
        assert held.running.wait(30)  # one request computing on the model's only instance
        waiting = [in_thread(v2.infer, "segmenter", {"image": GOOD_TENSOR}) for _ in range(2)]
        held.wait_queued(2)  # the queue bound (max_queue=2) is reached
        with expect(ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, "2 requests queued", "max_queue_size"):
            seg.segment(GOOD_IMAGE, model="segmenter")
        with expect(ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, "queued"):
            v2.infer("segmenter", {"image": GOOD_TENSOR})
        # Other models have their own queue; the server's own calls never queue.
        assert seg.segment(GOOD_IMAGE, model="other").model_name == "other"
        assert v2.live() and v2.ready()
        assert not first_out and all(not out for _, out in waiting)  # still held
        held.release()
        for t, _ in [(first, first_out), *waiting]:
            t.join(30)
    for out in [first_out, *(o for _, o in waiting)]:
        assert len(out) == 1 and not isinstance(out[0], Exception), out
        assert out[0]["logits"].tobytes() == good[1].tobytes()
    still_good(seg, v2, good)


def test_an_expired_request_in_a_long_queue_is_dropped_without_running(server, seg, v2, good):
    """A request whose deadline passes while it waits is answered
    DEADLINE_EXCEEDED, and the model never runs it."""
    scheduler = server.registry.scheduler(server.registry.get("segmenter"))
    dropped_before = scheduler.counters.expired + scheduler.counters.cancelled
    with Held(server, "segmenter") as held:
        first, first_out = in_thread(v2.infer, "segmenter", {"image": GOOD_TENSOR})
        assert held.running.wait(30)
        with expect(DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED):
            seg.segment(GOOD_IMAGE, model="segmenter", timeout=0.5)
        held.release()
        first.join(30)
        still_good(seg, v2, good)  # runs after the expired one reached the front of the queue
    assert first_out and first_out[0]["logits"].tobytes() == good[1].tobytes()
    assert held.calls[0] == 1 and scheduler.counters.expired + scheduler.counters.cancelled == dropped_before + 1
    # The held call, then still_good's two: the expired Segment never ran.
    assert len(held.calls) == 3, held.calls


def test_a_batch_over_max_batch_size_is_refused_naming_the_limit(server, seg, v2, good):
    scheduler = server.registry.scheduler(server.registry.get("segmenter"))
    assert scheduler.batching.max_batch_size == 8
    with expect(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "batch of 9", "max_batch_size of 8"):
        v2.infer("segmenter", {"image": np.zeros((9, 3, 8, 8), np.float32)})
    still_good(seg, v2, good)


def test_a_response_over_the_message_limit_is_refused_before_compute(server, seg, v2, good):
    # 3 input channels in, 4 class channels out: the input fits the limit, the answer would not.
    x = np.zeros((1, 3, 144, 144), np.float32)
    assert x.nbytes < MAX_MESSAGE < x.nbytes * 4 // 3
    with Held(server, "segmenter") as held:
        with expect(ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, "response would be 331776 bytes", "--max-message-bytes"):
            v2.infer("segmenter", {"image": x})
        assert held.calls == []
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
    error (it was INTERNAL: OverflowError from a lock's timeout)."""
    tc = pytest.importorskip("tritonclient.grpc")

    def call():
        client = tc.InferenceServerClient(server.address)  # default options: no client timeout
        x = tc.InferInput("image", list(GOOD_TENSOR.shape), "FP32")
        x.set_data_from_numpy(GOOD_TENSOR)
        try:
            return client.infer("segmenter", [x]).as_numpy("logits")
        finally:
            client.close()

    with Held(server, "segmenter") as held:
        first, first_out = in_thread(call)
        assert held.running.wait(30)
        second, second_out = in_thread(call)
        held.wait_queued(1)  # admitted, waiting for the instance
        assert not first_out and not second_out
        held.release()
        first.join(30)
        second.join(30)
    for out in (first_out, second_out):
        assert len(out) == 1 and not isinstance(out[0], Exception), out
        assert out[0].tobytes() == good[1].tobytes()
    assert v2.infer("segmenter", {"image": GOOD_TENSOR})["logits"].tobytes() == good[1].tobytes()


# -- hostile input: long echoes, malformed bytes, out of memory ----------------------------------------------
LONG = 20_000  # past grpc's 16 KB hard limit on trailers: an uncut echo reached the client as RESOURCE_EXHAUSTED


@pytest.mark.parametrize("char", ["x", "é"], ids=["ascii", "non-ascii"])
def test_long_user_input_is_echoed_as_a_cut_prefix_and_keeps_its_status(seg, v2, good, char):
    long = char * LONG
    x = {"image": GOOD_TENSOR}
    cases = [
        (lambda: v2.infer(long, x), NotFound, grpc.StatusCode.NOT_FOUND, "unknown model"),
        (lambda: seg.segment(GOOD_IMAGE, model=long), NotFound, grpc.StatusCode.NOT_FOUND, "unknown model"),
        (lambda: v2.infer("segmenter", {long: GOOD_TENSOR}), InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "has no input"),
        (lambda: v2.infer("segmenter", x, version=long), InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "is not a number"),
        (lambda: v2.infer("segmenter", x, outputs=[long, long + "y"]), InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT,
         "no output(s)"),
    ]  # fmt: skip
    for call, exc_type, code, fragment in cases:
        with expect(exc_type, code, fragment, f"… ({LONG}") as info:
            call()
        assert len(info.value.message.encode()) < 1024, info.value.message
    request = InferenceClient.build_request("segmenter", x)
    request.inputs[0].datatype = long
    with expect(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "has datatype", "expects FP32", f"… ({LONG} characters)"):
        v2._call(v2._stub.ModelInfer, request, 30, "ModelInfer")
    request = InferenceClient.build_request("segmenter", x)
    del request.inputs[0].shape[:]
    request.inputs[0].shape.extend([1] * 4096)  # a rank numpy cannot even build
    with expect(InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "has shape [1, 1, 1, 1, 1, 1, 1, 1, … (4096 in all)]"):
        v2._call(v2._stub.ModelInfer, request, 30, "ModelInfer")
    still_good(seg, v2, good)


def _raw(channel: grpc.Channel, method: str, streaming: bool = False):
    def same(data: bytes) -> bytes:
        return data

    if streaming:
        stream = channel.stream_stream(method, request_serializer=same, response_deserializer=same)
        return lambda data, timeout: list(stream(iter([data]), timeout=timeout))
    return channel.unary_unary(method, request_serializer=same, response_deserializer=same)


def test_malformed_request_bytes_answer_invalid_argument_on_every_service(server, seg, v2, good, caplog):
    """grpc parses a request before any servicer code runs and answered a
    parse failure UNKNOWN with a logged traceback. Every registered method
    now answers INVALID_ARGUMENT naming the message it wants."""
    truncated = InferenceClient.build_request("segmenter", {"image": GOOD_TENSOR}).SerializeToString()[:-7]
    methods = [
        ("/inference.GRPCInferenceService/ModelInfer", "inference.ModelInferRequest", False),
        ("/inference.GRPCInferenceService/ModelMetadata", "inference.ModelMetadataRequest", False),
        ("/seedlock.v1.Segmentation/Segment", "seedlock.v1.SegmentRequest", False),
        ("/seedlock.v1.Models/ListModels", "seedlock.v1.ListModelsRequest", False),
        ("/grpc.health.v1.Health/Check", "grpc.health.v1.HealthCheckRequest", False),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "grpc.reflection.v1alpha.ServerReflectionRequest", True),
    ]
    garbage = [b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05ab", truncated]
    with caplog.at_level(logging.ERROR), grpc.insecure_channel(server.address) as channel:
        for method, message_type, streaming in methods:
            call = _raw(channel, method, streaming)
            for data in garbage:
                with pytest.raises(grpc.RpcError) as info:
                    call(data, timeout=30)
                err = info.value
                assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, data[:8], err.code(), err.details())
                assert f"not a valid {message_type} message" in err.details(), err.details()
        # A request that parses still gets its answer on the same channel.
        assert _raw(channel, "/grpc.health.v1.Health/Check")(b"", timeout=30) == b"\x08\x01"  # SERVING
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    still_good(seg, v2, good)


def test_out_of_memory_is_resource_exhausted_not_internal():
    """A request too big for the memory left on the host: the client can act
    (send less), so it is RESOURCE_EXHAUSTED, logged without a traceback."""
    from seedlock.serve.errors import status_of

    code, message = status_of(MemoryError("Unable to allocate 3.2 GiB for an array"), "Segment")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "send less" in message
    code, message = status_of(ValueError("x" * 50_000), "Segment")  # a bug: INTERNAL, its message capped all the same
    assert code == grpc.StatusCode.INTERNAL and len(message.encode()) <= 1024 and message.endswith("(message cut)")
