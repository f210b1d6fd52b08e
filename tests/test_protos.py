"""The committed generated modules, and wire compatibility with KServe v2 clients."""

from __future__ import annotations

import re

import grpc
import pytest
from google.protobuf import __version__ as protobuf_version

from seedlock.protos import generate
from seedlock.protos.inference import grpc_service_pb2 as ours
from seedlock.protos.seedlock.v1 import models_pb2, segmentation_pb2

triton = pytest.importorskip("tritonclient.grpc.service_pb2")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def test_committed_modules_match_a_fresh_regeneration():
    pytest.importorskip("grpc_tools")
    from importlib.metadata import version

    tools = version("grpcio-tools")
    stale = generate.stale()
    assert not stale, (
        f"generated modules differ from their .proto sources: {stale}; run `python -m seedlock.protos.generate` "
        f"(committed code is from grpcio-tools {generate.GENCODE_GRPC}, installed: {tools})"
    )


def test_runtime_is_new_enough_for_the_generated_code():
    assert _version(protobuf_version) >= _version(generate.GENCODE_PROTOBUF)
    assert _version(grpc.__version__) >= _version(generate.GENCODE_GRPC)


def _fields(message):
    return {
        f.name: (
            f.number,
            f.type,
            f.is_repeated,
            f.message_type.full_name if f.message_type else None,
            f.containing_oneof.name if f.containing_oneof else None,
        )
        for f in message.fields
    }


def _messages(fd):
    def walk(m):
        yield m
        for n in m.nested_types:
            yield from walk(n)

    for m in fd.message_types_by_name.values():
        yield from walk(m)


def test_inference_messages_match_tritonclient_field_for_field():
    theirs = triton.DESCRIPTOR
    assert ours.DESCRIPTOR.package == theirs.package == "inference"
    checked = 0
    for message in _messages(ours.DESCRIPTOR):
        other = theirs.pool.FindMessageTypeByName(message.full_name)
        their_fields = _fields(other)
        for name, spec in _fields(message).items():
            assert their_fields.get(name) == spec, f"{message.full_name}.{name}: ours {spec}, tritonclient {their_fields.get(name)}"
            checked += 1
        if message.GetOptions().map_entry:
            assert other.GetOptions().map_entry
    assert checked > 40


def test_inference_service_methods_match_tritonclient():
    mine = ours.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert mine.full_name == theirs.full_name == "inference.GRPCInferenceService"
    # Every method Triton declares, in Triton's order (perf_analyzer and tritonclient call them all).
    assert [m.name for m in mine.methods] == [m.name for m in theirs.methods]
    assert len(mine.methods) >= 20
    for method in mine.methods:
        other = theirs.methods_by_name[method.name]
        assert (method.input_type.full_name, method.output_type.full_name) == (
            other.input_type.full_name,
            other.output_type.full_name,
        )
        assert (method.client_streaming, method.server_streaming) == (other.client_streaming, other.server_streaming)
    assert mine.methods_by_name["ModelStreamInfer"].client_streaming and mine.methods_by_name["ModelStreamInfer"].server_streaming


def test_messages_round_trip_through_tritonclients_classes():
    request = ours.ModelInferRequest(model_name="m", model_version="2", id="r1", raw_input_contents=[b"\x00\x01"])
    t = request.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    t.contents.fp32_contents.extend([1.5, -2.0])
    request.outputs.add(name="y").parameters["binary_data"].bool_param = False
    request.parameters["p"].int64_param = 7
    theirs = triton.ModelInferRequest.FromString(request.SerializeToString())
    assert theirs.model_name == "m" and theirs.id == "r1" and list(theirs.inputs[0].shape) == [1, 2]
    assert list(theirs.inputs[0].contents.fp32_contents) == [1.5, -2.0]
    assert theirs.outputs[0].parameters["binary_data"].bool_param is False
    assert theirs.parameters["p"].int64_param == 7
    back = ours.ModelInferRequest.FromString(theirs.SerializeToString())
    assert back == request


def test_seedlock_v1_services_and_module_names():
    seg = segmentation_pb2.DESCRIPTOR.services_by_name["Segmentation"]
    assert seg.full_name == "seedlock.v1.Segmentation"
    assert [m.name for m in seg.methods] == ["Segment"]
    assert models_pb2.DESCRIPTOR.services_by_name["Models"].methods_by_name["ListModels"]
    response = segmentation_pb2.SegmentResponse
    assert {"mask_png", "class_names", "class_pixel_counts", "model_digest", "timing"} <= set(response.DESCRIPTOR.fields_by_name)
    # Generated classes live under seedlock.protos (pickling, repr), not a bare top-level package.
    assert response.__module__ == "seedlock.protos.seedlock.v1.segmentation_pb2"
    assert ours.ModelInferRequest.__module__ == "seedlock.protos.inference.grpc_service_pb2"


def _requirements() -> dict[str, str]:
    """pyproject's serving dependencies and the dev extra, name -> specifier."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((generate.PROTO_ROOT.parent / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {re.split(r"[\[<>=!~ ;]", line, maxsplit=1)[0]: line for line in lines}


def test_dependency_floors_are_the_generated_codes_versions():
    """The committed code is stamped by grpcio-tools with the runtimes it needs;
    the package's floors are exactly those, and the dev extra pins that grpcio-tools."""
    reqs = _requirements()
    assert reqs["grpcio-tools"] == f"grpcio-tools=={generate.GENCODE_GRPC}"
    for name in ("grpcio", "grpcio-health-checking", "grpcio-reflection"):
        assert f">={generate.GENCODE_GRPC}" in reqs[name], reqs[name]
    assert f">={generate.GENCODE_PROTOBUF}" in reqs["protobuf"], reqs["protobuf"]
    stamped = [(p.name, p.read_text()) for p in generate.PROTO_ROOT.rglob("*_pb2*.py")]
    assert stamped
    for name, text in stamped:
        if name.endswith("_pb2.py"):
            assert f"# Protobuf Python Version: {generate.GENCODE_PROTOBUF}\n" in text, name
        else:
            assert f"GRPC_GENERATED_VERSION = '{generate.GENCODE_GRPC}'" in text, name


def test_protobuf_floor_stays_where_triton_kserve_and_mlserver_can_follow():
    """tritonclient 2.73, kserve 0.21 and mlserver 1.7 require protobuf<7: a 7.x
    floor makes pip fall back to 2023's tritonclient. And without the cap, pip
    puts protobuf 7 (with grpcio-health-checking/-reflection >= 1.82, protobuf-7
    gencode) into a seedlock-only environment; a client installed after it then
    downgrades protobuf under them (tests/test_coinstall.py installs in that order)."""
    assert _version(generate.GENCODE_PROTOBUF) < (7,)
    assert "<7" in _requirements()["protobuf"]
