"""The fuzz suite: property-based tests of every decoder and request parser
on a real server over a real socket (issue 13, bullet 8).

Property, for every call: the server answers with a correct status (never
INTERNAL or UNKNOWN, with a message under 4 KB that is the server's own) or a
correct answer (checked against the input: mask size, the identity models'
tensors, ONNX Runtime's logits, counts and echoed parameters), and it still
answers the reference requests byte-identically: each property checks its own
service's reference after every example, and every reference after it ends.

One server holds the exporter's output for every task (a tiny U-Net, and a
composer, captioner and DCGAN trained for a step or an epoch: most of the
file's time), a plain KServe-only graph and one identity graph per KServe v2
datatype, so every tensor decoder is reached with a model that accepts it.

``SEEDLOCK_FUZZ_EXAMPLES`` sets the examples per property (default 25;
``make fuzz``: 400); the three properties whose examples cost a few
milliseconds (images, KServe tensors, wire bytes) run four times as many.
Runs are derandomized (the same examples every run) unless
``SEEDLOCK_FUZZ_RANDOM=1``; ``SEEDLOCK_FUZZ_SHRINK=0`` reports the first
failing example without shrinking it. ``--hypothesis-show-statistics``
shows which statuses and input kinds the examples reached.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import fuzz_strategies as fs
import grpc
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, Phase, event, example, given, note, settings
from hypothesis import strategies as st
from onnx import helper
from serving_fixtures import make_segmenter_repository, sample_png, write_plain_model

from seedlock.core.dtypes import TABLE, TYPED_FIELD, V2_TO_NUMPY
from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.export.repository import write_model_version
from seedlock.protos.inference import grpc_service_pb2 as v2
from seedlock.protos.seedlock.v1 import captioning_pb2, composition_pb2, fingerprints_pb2, models_pb2, segmentation_pb2
from seedlock.serve.server import start_server

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("SEEDLOCK_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("SEEDLOCK_FUZZ_RANDOM", "") not in ("1", "true", "yes"),
    database=None,
    print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    + ([Phase.shrink] if os.environ.get("SEEDLOCK_FUZZ_SHRINK", "1") != "0" else []),
)
# Properties whose examples cost a few milliseconds run four times as many.
FUZZ_WIDE = settings(FUZZ, max_examples=EXAMPLES * 4)

SAFETY_TIMEOUT = 60.0  # every call has one; reaching it on these tiny inputs is a failure
MAX_STATUS_MESSAGE = 4096
C = grpc.StatusCode
BAD_INPUT = {C.INVALID_ARGUMENT, C.NOT_FOUND, C.RESOURCE_EXHAUSTED, C.OUT_OF_RANGE, C.FAILED_PRECONDITION}

# -- the repository ------------------------------------------------------------------
GENRES = ("up", "down")
SEGMENTER, PLAIN, COMPOSER, CAPTIONER, GENERATOR = "segmenter", "plain", "composer", "captioner", "fingerprint"
IDENTITY = {d.v2: f"id-{d.manifest}" for d in TABLE}  # v2 datatype -> model echoing a tensor of it


def write_identity_model(repository, dtype: str) -> None:
    """A KServe-only graph ``y = Identity(x)`` of one datatype, shape (-1, -1):
    its answer is its input, so every tensor decoder's output is checkable."""
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", elem, ["rows", "cols"])], [helper.make_tensor_value_info("y", elem, ["rows", "cols"])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="seedlock-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    manifest = Manifest(
        name=f"id-{dtype}", version=1, task="tensors",
        graphs={"model": GraphSpec("model.onnx", [TensorSpec("x", dtype, [-1, -1])], [TensorSpec("y", dtype, [-1, -1])])},
        tools={"onnx": onnx.__version__},
    )  # fmt: skip
    write_model_version(repository, manifest, {"model.onnx": model.SerializeToString()})


def melody(genre_index: int, i: int, n: int = 24) -> np.ndarray:
    from seedlock.core import music_events as me

    base = 60 + (i % 5)
    if genre_index == 0:
        return me.from_values([(base + (2 * k) % 12, 0.5) for k in range(n)])
    return me.from_values([(base + 12 - (k * 3) % 12, 1.0 if k % 3 else 2.0) for k in range(n)])


def train_and_export_task_models(root, repository) -> None:
    """The composer, captioner and DCGAN of tests/test_serve_*.py, each
    trained for the fewest steps the trainers take, through the real exporters."""
    import torch

    from seedlock.export.caption import export_captioner
    from seedlock.export.compose import export_composer
    from seedlock.export.fingerprint import export_generator
    from seedlock.train import compose_train as ct
    from seedlock.train.caption_train import CaptionConfig, train_captioner
    from seedlock.train.data import music_corpus as mc
    from seedlock.train.fingerprint_gan import FingerprintGANConfig, train_fingerprint_gan

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pieces = [mc.Piece(g, f"{g}/{i}", melody(gi, i)) for gi, g in enumerate(GENRES) for i in range(4)]
        cfg = ct.ComposeConfig(out=str(root / "compose"), window=8, horizon=8, hidden=16, epochs=1, batch_size=16, stride=4,
                               seed=5, eval_windows=2, progress=False)  # fmt: skip
        ct.train_compose(cfg, mc.split_pieces(pieces, list(GENRES), seed=3), log=lambda _: None)
        export_composer(root / "compose", repository, name=COMPOSER, version=1, log=lambda _: None)

        cap = CaptionConfig(out=str(root / "caption"), size=32, n_train=8, n_val=2, min_count=1, width=4, embed_dim=8, hidden=16,
                            batch_size=4, steps=1, beam=2, max_length=8, threads=1, progress=False)  # fmt: skip
        train_captioner(cap, log=lambda _: None)
        export_captioner(root / "caption", repository, name=CAPTIONER, log=lambda _: None)

        gan = FingerprintGANConfig(out=str(root / "gan"), latent_dim=16, g_width=8, d_width=4, batch_size=4, n_per_quality=6,
                                   lr=0.005, samples=8, log_every=5, threads=1, progress=False, steps=1)  # fmt: skip
        export_generator(train_fingerprint_gan(gan, log=lambda _: None), repository, name=GENERATOR, log=lambda _: None)
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    repo = root / "repository"
    make_segmenter_repository(repo, name=SEGMENTER, num_classes=4, size=32, seed=0)
    write_plain_model(repo, PLAIN)
    for d in TABLE:
        write_identity_model(repo, d.manifest)
    train_and_export_task_models(root, repo)
    return repo


# -- calls -------------------------------------------------------------------------------
@dataclass
class Answer:
    code: grpc.StatusCode
    details: str
    response: Any = None
    stream: list = field(default_factory=list)


METHODS: dict[str, tuple[type, type]] = {
    "/seedlock.v1.Segmentation/Segment": (segmentation_pb2.SegmentRequest, segmentation_pb2.SegmentResponse),
    "/seedlock.v1.Captioning/Caption": (captioning_pb2.CaptionRequest, captioning_pb2.CaptionResponse),
    "/seedlock.v1.Composition/Compose": (composition_pb2.ComposeRequest, composition_pb2.ComposeResponse),
    "/seedlock.v1.Composition/ComposeStream": (composition_pb2.ComposeRequest, composition_pb2.ComposeStreamResponse),
    "/seedlock.v1.Fingerprints/Generate": (fingerprints_pb2.GenerateRequest, fingerprints_pb2.GenerateResponse),
    "/seedlock.v1.Fingerprints/Compare": (fingerprints_pb2.CompareRequest, fingerprints_pb2.CompareResponse),
    "/seedlock.v1.Models/ListModels": (models_pb2.ListModelsRequest, models_pb2.ListModelsResponse),
    "/inference.GRPCInferenceService/ModelInfer": (v2.ModelInferRequest, v2.ModelInferResponse),
    "/inference.GRPCInferenceService/ModelMetadata": (v2.ModelMetadataRequest, v2.ModelMetadataResponse),
    "/inference.GRPCInferenceService/ModelReady": (v2.ModelReadyRequest, v2.ModelReadyResponse),
}
STREAMING = {"/seedlock.v1.Composition/ComposeStream"}


class Server:
    """The running server and one channel to it, as a client would hold them."""

    def __init__(self, running) -> None:
        self.running = running
        self.channel = grpc.insecure_channel(running.address)

    def call(self, method: str, request: Any, timeout: float | None = None) -> Answer:
        """One call; ``request`` is a message or raw bytes (sent as they are)."""
        request_type, response_type = METHODS[method]
        serialize = (lambda b: b) if isinstance(request, bytes) else request_type.SerializeToString
        try:
            if method in STREAMING:
                rpc = self.channel.unary_stream(method, request_serializer=serialize, response_deserializer=response_type.FromString)
                items = list(rpc(request, timeout=timeout or SAFETY_TIMEOUT))
                return Answer(C.OK, "", items[-1] if items else None, items)
            rpc = self.channel.unary_unary(method, request_serializer=serialize, response_deserializer=response_type.FromString)
            return Answer(C.OK, "", rpc(request, timeout=timeout or SAFETY_TIMEOUT))
        except grpc.RpcError as err:
            return Answer(err.code(), err.details() or "")


@pytest.fixture(scope="module")
def server(repository):
    running = start_server(repository, threads=1, workers=4, max_queue=32)
    client = Server(running)
    yield client
    client.channel.close()
    running.stop(grace=1.0)


def check_status(answer: Answer, allowed: set[grpc.StatusCode], what: str) -> None:
    """The status is one a bad input may get, its message short and the server's own."""
    note(f"{what} -> {answer.code.name}: {answer.details[:300]!r}")
    event(f"{what} -> {answer.code.name}")  # --hypothesis-show-statistics: what the examples reached
    assert answer.code in allowed | {C.OK}, f"{what}: {answer.code.name} {answer.details[:2000]!r}"
    assert len(answer.details.encode()) < MAX_STATUS_MESSAGE, f"{what}: a {len(answer.details.encode())}-byte status message"
    # gRPC's own refusal of an oversized status (trailing metadata) reads as
    # RESOURCE_EXHAUSTED too, but it hides the server's real answer.
    assert "metadata" not in answer.details.lower() or answer.code != C.RESOURCE_EXHAUSTED, f"{what}: {answer.details!r}"


# -- references ----------------------------------------------------------------------
def stable(message) -> bytes:
    """A response without its timing: the one field that may differ between equal answers."""
    copy = type(message)()
    copy.CopyFrom(message)
    if any(f.name == "timing" for f in copy.DESCRIPTOR.fields):
        copy.ClearField("timing")
    return copy.SerializeToString(deterministic=True)


REFERENCE_IMAGE = sample_png(37, 53, seed=1)


def grey_png(seed: int, h: int = 16, w: int = 16) -> bytes:
    return fs.png_bytes(fs.random_pixels(seed, h, w, 1, 8), 8)


def reference_requests() -> dict[str, tuple[str, Any]]:
    from seedlock.core import music_events as me

    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    infer = v2.ModelInferRequest(model_name=SEGMENTER, id="ref")
    infer.inputs.add(name="image", datatype="FP32", shape=list(x.shape))
    infer.raw_input_contents.append(x.tobytes())
    return {
        "segment": ("/seedlock.v1.Segmentation/Segment", segmentation_pb2.SegmentRequest(model_name=SEGMENTER, image=REFERENCE_IMAGE, request_id="ref")),
        "caption": ("/seedlock.v1.Captioning/Caption", captioning_pb2.CaptionRequest(model_name=CAPTIONER, image=REFERENCE_IMAGE, beam_size=2, max_length=6)),
        "compose": ("/seedlock.v1.Composition/Compose", composition_pb2.ComposeRequest(
            model_name=COMPOSER, genre="up", length=8, seed=3, strategy="top_k", temperature=0.9, top_k=4,
            primer_file=me.to_midi_bytes(melody(0, 1, n=6)))),
        "generate": ("/seedlock.v1.Fingerprints/Generate", fingerprints_pb2.GenerateRequest(model_name=GENERATOR, count=2, seed=5)),
        "compare": ("/seedlock.v1.Fingerprints/Compare", fingerprints_pb2.CompareRequest(set_a=[grey_png(1), grey_png(2)], set_b=[grey_png(3)])),
        "infer": ("/inference.GRPCInferenceService/ModelInfer", infer),
        "models": ("/seedlock.v1.Models/ListModels", models_pb2.ListModelsRequest()),
    }  # fmt: skip


@pytest.fixture(scope="module")
def references(server) -> Callable[..., None]:
    """Answers to the reference requests before any fuzzing, and a check that
    the server still gives them byte for byte."""
    requests = reference_requests()
    wanted = {}
    for key, (method, request) in requests.items():
        answer = server.call(method, request)
        assert answer.code == C.OK, f"reference {key}: {answer.code.name} {answer.details}"
        wanted[key] = stable(answer.response)

    def still_answered(*keys: str) -> None:
        for key in keys or tuple(requests):
            method, request = requests[key]
            answer = server.call(method, request)
            assert answer.code == C.OK, f"reference {key} after fuzzing: {answer.code.name} {answer.details[:500]}"
            assert stable(answer.response) == wanted[key], f"reference {key}: the answer changed after fuzzing"

    return still_answered


@pytest.fixture(autouse=True)
def every_reference_after_each_property(references):
    """After each property, pass or fail: every reference answer, byte for byte."""
    yield
    references()


# -- images ------------------------------------------------------------------------
def cv2_dims(data: bytes) -> tuple[int, int] | None:
    """(height, width) as OpenCV decodes the bytes, or None."""
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    return None if img is None else img.shape[:2]


def must_be_accepted(label: str) -> bool:
    """An unmutated PNG of 1, 3 or 4 channels (8 or 16 bits) or a JPEG is a valid
    image within the limits: it gets an answer. (A 2-channel PNG may be refused.)"""
    return (label.startswith("png") and "x2 " not in label) or label.startswith("jpeg")


def _png(h: int, w: int, channels: int, depth: int) -> bytes:
    return fs.png_bytes(fs.random_pixels(h * w, h, w, channels, depth), depth)


@FUZZ_WIDE
@given(fs.hostile_images())
# The probes, run every time: 2-channel images, a header past OpenCV's
# pixel cap, a 100000x1 header, the thinnest valid image this suite sends.
@example(case=("png 5x7x2 8-bit", _png(5, 7, 2, 8)))
@example(case=("png 5x7x2 16-bit", _png(5, 7, 2, 16)))
@example(case=("codec pam 5x7x2", fs.pam_bytes(fs.random_pixels(1, 5, 7, 2, 8), 255)))  # OpenCV: a 2-channel array
@example(case=("header 40000x40000", fs.with_png_dims(_png(4, 4, 3, 8), 40000, 40000)))
@example(case=("header 100000x1", fs.with_png_dims(_png(1, 4, 1, 8), 100_000, 1)))
@example(case=("png 1x3000x3 8-bit", _png(1, 3000, 3, 8)))
@example(case=("bytes", b""))
def test_images_to_every_image_decoder(server, references, case):
    """Segmentation, Captioning and Fingerprints.Compare on hostile image bytes."""
    label, data = case
    note(f"{label}: {len(data)} bytes, head {data[:40]!r}")
    event(f"input: {label.split()[0]}")
    dims = cv2_dims(data)
    seg = server.call("/seedlock.v1.Segmentation/Segment", segmentation_pb2.SegmentRequest(model_name=SEGMENTER, image=data))
    check_status(seg, BAD_INPUT, "Segment")
    if must_be_accepted(label):
        assert seg.code == C.OK, f"valid {label} refused: {seg.code.name} {seg.details}"
    if seg.code == C.OK:
        r = seg.response
        mask = cv2.imdecode(np.frombuffer(r.mask_png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert mask is not None and mask.dtype == np.uint8 and mask.shape == (r.height, r.width)
        if dims is not None:
            assert (r.height, r.width) == dims, f"mask {r.width}x{r.height} for a {dims[1]}x{dims[0]} image"
        assert int(mask.max()) < len(r.class_names) == 4
        assert list(r.class_pixel_counts) == np.bincount(mask.ravel(), minlength=4).tolist()

    cap = server.call("/seedlock.v1.Captioning/Caption",
                      captioning_pb2.CaptionRequest(model_name=CAPTIONER, image=data, beam_size=1, max_length=4))  # fmt: skip
    check_status(cap, BAD_INPUT, "Caption")
    if must_be_accepted(label):
        assert cap.code == C.OK, f"valid {label} refused: {cap.code.name} {cap.details}"
    if cap.code == C.OK:
        assert len(cap.response.captions) == 1 and len(cap.response.captions[0].tokens) <= 4 + 2

    cmp = server.call("/seedlock.v1.Fingerprints/Compare", fingerprints_pb2.CompareRequest(set_a=[data], set_b=[data, data]))
    check_status(cmp, BAD_INPUT, "Compare")
    if must_be_accepted(label):
        assert cmp.code == C.OK, f"valid {label} refused: {cmp.code.name} {cmp.details}"
    if cmp.code == C.OK:
        r = cmp.response
        assert (r.set_a.count, r.set_b.count, r.pairs) == (1, 2, 2)
        if dims is not None:
            assert (r.height, r.width) == dims
        assert r.centroid_distance == 0.0 and r.hamming.mean == 0.0  # one image against itself
    references("segment")


# -- primers -----------------------------------------------------------------------
def _midi_with_division_zero() -> bytes:
    from seedlock.core import music_events as me

    data = bytearray(me.to_midi_bytes(melody(0, 0, n=4)))
    data[12:14] = b"\x00\x00"
    return bytes(data)


@FUZZ
@given(fs.hostile_primers(), st.booleans())
@example(case=("magic", b"MThd"), streaming=False)
@example(case=("midi division 0", _midi_with_division_zero()), streaming=False)
@example(case=("mxl inflating to 8 MB", fs.mxl_bytes(fs.musicxml_of(melody(1, 0, n=4)).replace(
    b"<score-partwise", b"<!--" + b" " * (8 << 20) + b"-->" + b"<score-partwise", 1))), streaming=True)  # fmt: skip
def test_primers_to_compose(server, references, case, streaming):
    """Compose and ComposeStream with hostile MIDI / MusicXML / MXL primers."""
    label, data = case
    note(f"{label}: {len(data)} bytes, head {data[:60]!r}")
    event(f"input: {label.split(' (')[0]}")
    request = composition_pb2.ComposeRequest(model_name=COMPOSER, genre="down", length=4, seed=1, strategy="greedy", primer_file=data)
    method = "/seedlock.v1.Composition/ComposeStream" if streaming else "/seedlock.v1.Composition/Compose"
    answer = server.call(method, request)
    check_status(answer, BAD_INPUT, method)
    if " valid " in label and not label.startswith("mxl"):
        assert answer.code == C.OK, f"valid {label} refused: {answer.code.name} {answer.details}"
    if answer.code == C.OK:
        result = answer.response.result if streaming else answer.response
        assert len(result.events) == 4 and result.primer_length >= 1
        assert result.midi.startswith(b"MThd") and result.musicxml.lstrip().startswith(b"<")
        if streaming:
            assert [item.index for item in answer.stream] == [0, 1, 2, 3, 4]
    references("compose")


# -- KServe v2 ------------------------------------------------------------------------
INFER_MODELS = {
    SEGMENTER: ([("image", "FP32", [-1, 3, -1, -1], 4)], ["logits"]),
    PLAIN: ([("image", "FP32", [-1, 3, -1, -1], 1)], ["logits"]),
    **{model: ([("x", datatype, [-1, -1], 1)], ["y"]) for datatype, model in IDENTITY.items()},
}


@pytest.fixture(scope="module")
def onnx_reference(repository):
    """Plain ONNX Runtime sessions of the convolutional models: the correct answers."""
    import onnxruntime as ort

    from seedlock.core.repository import load_version

    sessions = {name: ort.InferenceSession(str(load_version(repository, name).path()), providers=["CPUExecutionProvider"])
                for name in (SEGMENTER, PLAIN)}  # fmt: skip
    return lambda name, x: sessions[name].run(["logits"], {"image": x})[0]


def decoded_input(request: v2.ModelInferRequest) -> np.ndarray:
    """The one input tensor of ``request`` as the protocol defines it."""
    tensor = request.inputs[0]
    dtype = V2_TO_NUMPY[tensor.datatype]
    if request.raw_input_contents:
        return np.frombuffer(request.raw_input_contents[0], dtype=dtype).reshape(list(tensor.shape))
    return np.array(getattr(tensor.contents, TYPED_FIELD[tensor.datatype]), dtype=dtype).reshape(list(tensor.shape))


def decoded_output(response: v2.ModelInferResponse, i: int) -> np.ndarray:
    out = response.outputs[i]
    dtype = V2_TO_NUMPY[out.datatype]
    if response.raw_output_contents:
        return np.frombuffer(response.raw_output_contents[i], dtype=dtype).reshape(list(out.shape))
    return np.array(getattr(out.contents, TYPED_FIELD[out.datatype]), dtype=dtype).reshape(list(out.shape))


def same_tensor(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def _infer(model: str, datatype: str, shape: list[int], raw: bytes | None = None) -> v2.ModelInferRequest:
    request = v2.ModelInferRequest(model_name=model)
    request.inputs.add(name="x" if model.startswith("id-") else "image", datatype=datatype, shape=shape)
    if raw is not None:
        request.raw_input_contents.append(raw)
    return request


def _typed_int8_out_of_range() -> v2.ModelInferRequest:
    request = _infer(IDENTITY["INT8"], "INT8", [1, 2])
    request.inputs[0].contents.int_contents.extend([127, 128])
    return request


@FUZZ_WIDE
@given(fs.infer_requests(INFER_MODELS))
@example(infer=_infer(SEGMENTER, "FP32", [1, 3, -4, 8], bytes(384)))
@example(infer=_infer(SEGMENTER, "FP32", [2**62, 3, 4, 4], bytes(192)))
@example(infer=_infer(PLAIN, "FP32", [1, 3, 2**31, 2**31], bytes(12)))
@example(infer=_infer(PLAIN, "BF16", [1, 3, 4, 4], bytes(96)))
@example(infer=_infer(IDENTITY["FP16"], "BYTES", [1, 1], b"\x00\x00\x00\x01x"))
@example(infer=_infer(IDENTITY["BOOL"], "BOOL", [1, 3], b"\x00\x01\x02"))
@example(infer=_typed_int8_out_of_range())
def test_kserve_model_infer(server, references, onnx_reference, infer):
    """ModelInfer with random names, datatypes, shapes, raw and typed contents,
    parameters and requested outputs; an answer must be the model's."""
    note(f"infer: {str(infer)[:1500]}")
    answer = server.call("/inference.GRPCInferenceService/ModelInfer", infer)
    check_status(answer, BAD_INPUT, "ModelInfer")
    if answer.code == C.OK:
        response = answer.response
        names = [o.name for o in response.outputs]
        assert names == ([o.name for o in infer.outputs] or names)  # the outputs asked for, in order
        x = decoded_input(infer)
        want = onnx_reference(infer.model_name, x) if infer.model_name in (SEGMENTER, PLAIN) else x
        assert names and set(names) == ({"logits"} if infer.model_name in (SEGMENTER, PLAIN) else {"y"})
        for i in range(len(names)):
            assert same_tensor(decoded_output(response, i), want), f"output {i} is not the model's answer"
    references("infer")


# -- task parameters ---------------------------------------------------------------
def deadlines() -> st.SearchStrategy[float | None]:
    """Mostly none (the safety timeout), sometimes one so short it must pass."""
    return st.one_of(st.none(), st.none(), st.sampled_from([0.0005, 0.005, 0.05]))


def allowed_for(timeout: float | None) -> set[grpc.StatusCode]:
    return BAD_INPUT | ({C.DEADLINE_EXCEEDED} if timeout is not None else set())


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), strategy)


def model_fields(own: str) -> dict[str, tuple[st.SearchStrategy, st.SearchStrategy]]:
    """model_name and model_version: the task's model (by name or by default), or another."""
    return {
        "model_name": (st.sampled_from([own, ""]), st.one_of(st.sampled_from([SEGMENTER, PLAIN, COMPOSER, CAPTIONER, "nope"]), fs.texts)),
        "model_version": (st.sampled_from([0, 1]), fs.ints(*fs.INT64)),
    }


REQUEST_ID = {"request_id": (st.text(max_size=12), fs.texts)}


@FUZZ
@given(fs.fields(**model_fields(SEGMENTER), **REQUEST_ID), deadlines())
def test_segment_parameters(server, references, f, timeout):
    request = segmentation_pb2.SegmentRequest(image=REFERENCE_IMAGE, **f)
    answer = server.call("/seedlock.v1.Segmentation/Segment", request, timeout)
    check_status(answer, allowed_for(timeout), "Segment")
    if answer.code == C.OK:
        assert answer.response.request_id == f["request_id"] and answer.response.model_name == SEGMENTER
        want = server.call(
            "/seedlock.v1.Segmentation/Segment", segmentation_pb2.SegmentRequest(model_name=SEGMENTER, image=REFERENCE_IMAGE)
        )
        assert answer.response.mask_png == want.response.mask_png
    references("segment")


@FUZZ
@given(
    fs.fields(
        **model_fields(CAPTIONER),
        beam_size=(optional(st.integers(1, 4)), optional(fs.ints(*fs.INT32, 3, 4, 8, 20))),
        max_length=(optional(st.integers(1, 8)), optional(fs.ints(*fs.INT32, 20, 21, 64))),
        num_captions=(optional(st.integers(1, 2)), optional(fs.ints(*fs.INT32, 3, 4))),
        **REQUEST_ID,
    ),
    deadlines(),
)
def test_caption_parameters(server, references, f, timeout):
    answer = server.call("/seedlock.v1.Captioning/Caption", captioning_pb2.CaptionRequest(image=REFERENCE_IMAGE, **f), timeout)
    check_status(answer, allowed_for(timeout), "Caption")
    if answer.code == C.OK:
        r = answer.response
        assert len(r.captions) == (1 if f["num_captions"] is None else f["num_captions"])
        assert f["beam_size"] is None or r.beam_size == f["beam_size"]
        assert f["max_length"] is None or r.max_length == f["max_length"]
        assert all(len(c.tokens) <= r.max_length + 2 and math.isfinite(c.log_prob) for c in r.captions)
        assert r.request_id == f["request_id"]
    references("caption")


@st.composite
def primer_events(draw: st.DrawFn, hostile: bool) -> list[composition_pb2.Event] | None:
    if draw(st.booleans()):
        return None
    if hostile:
        pairs = st.tuples(fs.ints(*fs.INT32, 60, 127, 128, -2), fs.doubles)
        return [composition_pb2.Event(pitch=p, duration=d) for p, d in draw(st.lists(pairs, max_size=6))]
    pairs = st.tuples(st.one_of(st.just(-1), st.integers(0, 127)), st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 4.0]))
    return [composition_pb2.Event(pitch=p, duration=d) for p, d in draw(st.lists(pairs, min_size=1, max_size=6))]


STRATEGIES = ["", "greedy", "temperature", "top_k", "sample", "topk", "TOP-K", " greedy "]


@FUZZ
@given(
    fs.fields(
        **model_fields(COMPOSER),
        genre=(st.sampled_from(["up", "down"]), st.one_of(st.sampled_from(["", " up", "UP", "up\x00"]), fs.texts)),
        length=(st.integers(1, 16), fs.ints(*fs.UINT32, 1024, 1025)),
        strategy=(st.sampled_from(STRATEGIES), st.one_of(st.sampled_from(["beam", "argmax", "top_p"]), fs.texts)),
        temperature=(optional(st.floats(0.05, 3.0)), optional(fs.doubles)),
        top_k=(optional(st.integers(1, 8)), optional(fs.ints(*fs.INT32, 3, 5))),
        seed=(optional(fs.ints(*fs.UINT64)), optional(fs.ints(*fs.UINT64))),
        events=(primer_events(False), primer_events(True)),
        **REQUEST_ID,
    ),
    deadlines(),
)
# The probe: a near-zero temperature must be refused or give the greedy melody.
@example(f={"model_name": COMPOSER, "model_version": 0, "genre": "up", "length": 8, "strategy": "temperature", "temperature": 5e-324,
            "top_k": None, "seed": 1, "events": None, "request_id": ""}, timeout=None)  # fmt: skip
def test_compose_parameters(server, references, f, timeout):
    request = composition_pb2.ComposeRequest(**{k: v for k, v in f.items() if k != "events"})
    if f["events"] is not None:
        request.primer_events.events.extend(f["events"])
    answer = server.call("/seedlock.v1.Composition/Compose", request, timeout)
    check_status(answer, allowed_for(timeout), "Compose")
    if answer.code == C.OK:
        r = answer.response
        assert len(r.events) == f["length"] and r.request_id == f["request_id"]
        assert all(e.pitch == -1 or 0 <= e.pitch <= 127 for e in r.events)
        assert all(math.isfinite(e.duration) and e.duration > 0 for e in r.events)
        assert f["seed"] is None or r.seed == f["seed"]
        sampled = r.strategy in ("temperature", "top_k")
        if f["temperature"] is not None and sampled:
            assert r.temperature == f["temperature"]
        if sampled and r.temperature <= 1e-6:
            # As the temperature goes to 0, sampling becomes the argmax: the greedy melody.
            event("a near-zero temperature was accepted")
            greedy = type(request)()
            greedy.CopyFrom(request)
            greedy.strategy = "greedy"
            greedy.ClearField("temperature")
            greedy.ClearField("top_k")
            g = server.call("/seedlock.v1.Composition/Compose", greedy)
            assert g.code == C.OK, f"greedy twin: {g.code.name} {g.details}"
            assert [(e.pitch, e.duration) for e in r.events] == [(e.pitch, e.duration) for e in g.response.events], (
                f"temperature {r.temperature!r} gave a melody other than the greedy one"
            )
    references("compose")


@FUZZ
@given(
    fs.fields(
        **model_fields(GENERATOR),
        count=(st.integers(1, 4), fs.ints(*fs.INT32, 3, 64, 65)),
        quality=(st.sampled_from(["", "all"]), st.one_of(st.sampled_from(["Q1", "Q5", "q1", "ALL"]), fs.texts)),
        seed=(optional(fs.ints(*fs.UINT64)), optional(fs.ints(*fs.UINT64))),
        **REQUEST_ID,
    ),
    deadlines(),
)
def test_generate_parameters(server, references, f, timeout):
    answer = server.call("/seedlock.v1.Fingerprints/Generate", fingerprints_pb2.GenerateRequest(**f), timeout)
    check_status(answer, allowed_for(timeout), "Generate")
    if answer.code == C.OK:
        r = answer.response
        assert len(r.images_png) == f["count"] and r.request_id == f["request_id"]
        assert f["seed"] is None or r.seed == f["seed"]
        for png in r.images_png[:3]:
            img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
            assert img is not None and img.shape == (r.height, r.width)
    references("generate")


GREY = [grey_png(i) for i in range(4)] + [grey_png(9, 12, 16)]  # the last one of another size: 16 wide, 12 high


@FUZZ
@given(
    fs.fields(
        set_a=(st.lists(st.integers(0, 3), min_size=1, max_size=3), st.lists(st.integers(0, 4), max_size=3)),
        set_b=(st.lists(st.integers(0, 3), min_size=1, max_size=3), st.lists(st.integers(0, 4), max_size=3)),
        binarize_threshold=(optional(st.integers(1, 255)), optional(fs.ints(*fs.INT32, 128, 255, 256))),
        **REQUEST_ID,
    ),
    deadlines(),
)
def test_compare_parameters(server, references, f, timeout):
    a, b = f["set_a"], f["set_b"]
    request = fingerprints_pb2.CompareRequest(**{**f, "set_a": [GREY[i] for i in a], "set_b": [GREY[i] for i in b]})
    answer = server.call("/seedlock.v1.Fingerprints/Compare", request, timeout)
    check_status(answer, allowed_for(timeout), "Compare")
    if answer.code == C.OK:
        r = answer.response
        sizes = {(12, 16) if i == 4 else (16, 16) for i in a + b}
        assert a and b and len(sizes) == 1, "an empty set or images of two sizes were compared"
        assert (r.set_a.count, r.set_b.count, r.pairs, (r.height, r.width)) == (len(a), len(b), len(a) * len(b), sizes.pop())
        assert f["binarize_threshold"] is None or r.binarize_threshold == f["binarize_threshold"]
        assert r.request_id == f["request_id"]
    references("compare")


# -- malformed protobuf ----------------------------------------------------------------
@st.composite
def wire_payloads(draw: st.DrawFn, valid: dict[str, bytes]) -> tuple[str, bytes]:
    """(method, bytes): random bytes, or a valid request of the method mutated."""
    method = draw(st.sampled_from(sorted(METHODS)))
    if draw(st.booleans()):
        return method, draw(st.binary(max_size=512))
    return method, draw(fs.mutated(valid[method]))


VALID_WIRE = {method: request.SerializeToString() for method, request in reference_requests().values()}
VALID_WIRE.update({
    "/seedlock.v1.Composition/ComposeStream": VALID_WIRE["/seedlock.v1.Composition/Compose"],
    "/inference.GRPCInferenceService/ModelMetadata": v2.ModelMetadataRequest(name=SEGMENTER, version="1").SerializeToString(),
    "/inference.GRPCInferenceService/ModelReady": v2.ModelReadyRequest(name=SEGMENTER, version="1").SerializeToString(),
})  # fmt: skip


@FUZZ_WIDE
@given(wire_payloads(VALID_WIRE))
@example(case=("/inference.GRPCInferenceService/ModelInfer", b"\xff"))
@example(case=("/seedlock.v1.Segmentation/Segment", b"\x1a\xff\xff\xff\xff\x0f"))
@example(case=("/seedlock.v1.Composition/ComposeStream", b"\x0a\x80"))
def test_malformed_protobuf(server, references, case):
    """Random and mutated bytes as the request of every method: a bad message is
    INVALID_ARGUMENT, one that happens to parse gets its answer."""
    method, payload = case
    note(f"{method}: {payload[:80]!r}")
    answer = server.call(method, payload)
    check_status(answer, BAD_INPUT, method)
    if answer.code == C.OK:  # the bytes parsed: the answer is a well-formed response
        assert answer.response is not None
