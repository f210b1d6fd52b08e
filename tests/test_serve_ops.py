"""Operations: ``seedlock serve --config FILE``, JSON logs and the access log,
OpenTelemetry tracing. Real servers: a ``python -m seedlock serve`` subprocess
started from a config file, and an in-process one for tracing."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from process_helpers import read_address
from serving_fixtures import make_segmenter_repository, sample_png

from seedlock.cli import build_parser, main
from seedlock.clients import SegmentationClient
from seedlock.clients.base import NO_RETRY
from seedlock.clients.errors import InvalidArgument
from seedlock.core.errors import UserError
from seedlock.serve import logs, tracing
from seedlock.serve.config_file import expand, settings, subparser
from seedlock.serve.server import start_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_segmenter_repository(tmp_path_factory.mktemp("opsrepo"), name="segmenter")


def serve_parser():
    parser = build_parser("serve")
    return parser, subparser(parser, "serve")


# --- config file ---------------------------------------------------------------------------------


def test_every_serve_flag_is_a_config_key_read_off_the_parser():
    _, serve = serve_parser()
    keys = settings(serve)
    flags = {o[2:] for a in serve._actions for o in a.option_strings if o.startswith("--") and not o.startswith("--no-")}
    assert set(keys) == flags - {"help", "config"}
    assert {"repository", "max-queue", "spin", "access-log", "log-format", "trace-endpoint", "tls-cert"} <= set(keys)


def test_config_settings_become_flags_the_command_line_overrides(tmp_path):
    parser, serve = serve_parser()
    config = tmp_path / "serve.yaml"
    config.write_text("repository: /models\nmax_queue: 12\nspin: true\nmodels: [a, b]\naccess-log: false\n"
                      "grace: 3\nthreads: null\n")  # fmt: skip
    argv = expand(serve, ["-v", "serve", "--config", str(config), "--max-queue", "7"], "serve")
    args = parser.parse_args(argv)
    assert (args.repository, args.max_queue, args.spin, args.models, args.access_log, args.grace, args.threads) == \
        ("/models", 7, True, ["a", "b"], False, 3.0, None)  # fmt: skip
    assert parser.parse_args(expand(serve, ["serve", f"--config={config}", "--access-log"], "serve")).access_log is True


@pytest.mark.parametrize(
    "text, said",
    [
        ("bogus: 1\n", "unknown key 'bogus'; valid keys: access-log, auth-token-file, backend"),
        ("max-queue: many\n", "key 'max-queue': invalid int value: 'many'"),
        ("backend: gpu\n", "key 'backend': invalid choice: 'gpu'"),
        ("spin: 3\n", "key 'spin' is a switch: give true or false, not 3"),
        ("port: true\n", "key 'port' takes a value (a number or a string), not true/false"),
        ("port: 70000\n", "key 'port'"),
        ("host: {a: 1}\n", "key 'host' takes a value (a number or a string), not dict"),
        ("max-queue: 1\nmax_queue: 2\n", "key 'max-queue' is given twice"),
        ("config: other.yaml\n", "cannot name another"),
        ("- a\n- b\n", "must be a mapping of flag names to values, not a list"),
        ("a: [\n", "is not valid YAML (line 2, column 1)"),
    ],
)
def test_config_mistakes_are_one_line_user_errors_naming_the_key(tmp_path, capsys, text, said):
    config = tmp_path / "serve.yaml"
    config.write_text(text)
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"seedlock serve: error: {config}") or err.startswith("seedlock serve: error: the config file")
    assert said in err and err.count("\n") == 1, err


def test_a_missing_config_file_says_so(tmp_path, capsys):
    assert main(["serve", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read the config file" in capsys.readouterr().err


# --- a real server from a config file, JSON logs, access log -------------------------------------------


def test_server_from_config_file_logs_json_and_one_access_line_per_call(repo, tmp_path):
    tc = pytest.importorskip("tritonclient.grpc")
    config = tmp_path / "serve.yaml"
    config.write_text(f"repository: {repo}\nport: 0\nthreads: 1\nworkers: 2\nmax-queue: 9\nlog-format: json\n")
    stderr = (tmp_path / "stderr").open("w+")
    # The command line's --max-queue overrides the file's.
    proc = subprocess.Popen([sys.executable, "-m", "seedlock", "serve", "--config", str(config), "--max-queue", "5"],
                            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)  # fmt: skip
    try:
        address = read_address(proc, stderr)
        http = proc.stdout.readline()  # "seedlock serve: http on HOST:PORT", printed right after
        assert "http on" in http, http
        ready = urllib.request.Request(f"http://{http.split()[-1]}/v2/models/segmenter/ready", headers={"x-request-id": "rest-3"})
        assert urllib.request.urlopen(ready, timeout=30).status == 200
        with SegmentationClient(address, timeout=30, retry=NO_RETRY) as seg:
            assert seg.segment(sample_png(20, 20), model="segmenter").mask.shape == (20, 20)
            version = next(m for m in seg.list_models().models if m.name == "segmenter").versions[0]
            assert version.max_queue_size == 5
            with pytest.raises(InvalidArgument):
                seg.segment(b"not an image", model="segmenter")
        client = tc.InferenceServerClient(address)
        x = np.zeros((1, 3, 32, 32), np.float32)
        inp = tc.InferInput("image", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        client.infer("segmenter", [inp], request_id="req-42")
        with pytest.raises(tc.InferenceServerException):
            client.get_model_metadata("nosuchmodel", headers={"x-request-id": "meta-7"})
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr.seek(0)
    lines = [line for line in stderr.read().splitlines() if line.strip()]
    # Every log record is a JSON line (native libraries may still print their own lines, e.g. ONNX Runtime's warnings).
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert not [line for line in lines if not line.startswith("{") and re.search(r"(INFO|WARNING|ERROR) seedlock", line)]
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["logger"] == "seedlock.serve" and e["level"] == "INFO" for e in entries)
    access = [e for e in entries if e["logger"] == "seedlock.access"]
    assert all(e["level"] == "INFO" and {"method", "model", "status", "duration_ms", "request_id", "peer"} <= set(e)
               for e in access)  # fmt: skip
    by = {(e["method"], e["status"]): e for e in access}
    ok = by[("/seedlock.v1.Segmentation/Segment", "OK")]
    assert ok["model"] == "segmenter" and ok["duration_ms"] > 0 and ok["peer"]
    bad = by[("/seedlock.v1.Segmentation/Segment", "INVALID_ARGUMENT")]
    assert bad["model"] == "segmenter" and bad["error"]  # answered errors are visible, not DEBUG-only
    infer = by[("/inference.GRPCInferenceService/ModelInfer", "OK")]
    assert infer["model"] == "segmenter" and infer["request_id"] == "req-42"
    missing = by[("/inference.GRPCInferenceService/ModelMetadata", "NOT_FOUND")]
    assert missing["model"] == "nosuchmodel" and missing["request_id"] == "meta-7"
    rest = by[("GET /v2/models/segmenter/ready", "200")]  # REST requests get their line too
    assert rest["model"] == "segmenter" and rest["request_id"] == "rest-3" and rest["peer"]


def test_no_access_log_and_text_format(repo, tmp_path):
    stderr = (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "seedlock", "serve", "--repository", str(repo), "--port", "0",
                             "--threads", "1", "--workers", "2", "--no-access-log"],
                            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)  # fmt: skip
    try:
        address = read_address(proc, stderr)
        with SegmentationClient(address, timeout=30, retry=NO_RETRY) as seg:
            seg.segment(sample_png(16, 16), model="segmenter")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr.seek(0)
    text = stderr.read()
    assert re.search(r"^\S+ \S+ INFO seedlock\.serve: ", text, re.M) and "seedlock.access" not in text


def test_text_and_json_formatters_carry_extra_fields():
    record = logging.LogRecord("seedlock.access", logging.INFO, __file__, 1, "call %s", ("x",), None)
    record.method, record.request_id = "/a.B/C", "id 1"
    assert logs.TextFormatter().format(record).endswith("INFO seedlock.access: call x method=/a.B/C request_id=\"id 1\"")
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["message"] == "call x" and entry["method"] == "/a.B/C" and entry["ts"].endswith("Z")


# --- tracing ---------------------------------------------------------------------------------------------


def test_tracing_is_off_without_an_endpoint():
    assert tracing.endpoint_from(None, {}) is None and not tracing.configure(None) and not tracing.enabled()
    assert tracing.endpoint_from(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}) == "http://c:4317"
    assert tracing.endpoint_from("http://flag:4317", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}) == "http://flag:4317"
    assert tracing.endpoint_from("http://flag:4317", {"OTEL_SDK_DISABLED": "true"}) is None


def test_an_endpoint_without_the_tracing_extra_is_a_user_error_naming_it():
    try:
        import opentelemetry.exporter.otlp.proto.grpc.trace_exporter  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the OTLP exporter is installed here; the error is for installs without the tracing extra")
    with pytest.raises(UserError, match=r"pip install 'seedlock\[tracing\]'"):
        tracing.configure("http://collector:4317")
    assert not tracing.enabled()


def test_one_span_per_call_with_status_model_and_the_callers_parent(repo):
    pytest.importorskip("opentelemetry.sdk", reason="the tracing test needs opentelemetry-sdk (the dev extra)")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing.use_processor(SimpleSpanProcessor(exporter))
    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    try:
        with start_server(repo, threads=1, workers=2) as running:
            channel = grpc.insecure_channel(running.address)
            from seedlock.protos.inference import grpc_service_pb2 as pb
            from seedlock.protos.inference import grpc_service_pb2_grpc as pbg

            stub = pbg.GRPCInferenceServiceStub(channel)
            stub.ModelReady(pb.ModelReadyRequest(name="segmenter"),
                            metadata=[("traceparent", f"00-{trace_id}-{parent_id}-01")])  # fmt: skip
            with pytest.raises(grpc.RpcError):
                stub.ModelMetadata(pb.ModelMetadataRequest(name="nosuchmodel"))
            channel.close()
    finally:
        tracing.shutdown()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    ready = spans["inference.GRPCInferenceService/ModelReady"]
    assert f"{ready.context.trace_id:032x}" == trace_id and f"{ready.parent.span_id:016x}" == parent_id
    assert ready.attributes["rpc.grpc.status_code"] == 0 and ready.attributes["seedlock.model"] == "segmenter"
    assert ready.status.is_ok
    missing = spans["inference.GRPCInferenceService/ModelMetadata"]
    assert missing.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert not missing.status.is_ok and "NOT_FOUND" in missing.status.description
    assert not tracing.enabled()


def test_trace_endpoint_from_the_environment_without_the_extra_fails_before_loading(repo, tmp_path):
    try:
        import opentelemetry.exporter.otlp.proto.grpc.trace_exporter  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the OTLP exporter is installed here")
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    proc = subprocess.run([sys.executable, "-m", "seedlock", "serve", "--repository", str(repo), "--port", "0"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("seedlock serve: error: tracing to http://collector:4317 needs")


def test_lists_become_comma_separated_values_or_repeated_flags():
    import argparse

    from seedlock.serve.config_file import as_arguments

    parser = argparse.ArgumentParser()
    parser.add_argument("--names")
    parser.add_argument("--load", action="append", default=[])
    parser.add_argument("--size", nargs="+", type=int)
    arguments = as_arguments(parser, {"names": ["a", "b"], "load": ["x", "y"], "size": [1, 2]}, "c.yaml")
    assert arguments == ["--names", "a,b", "--load", "x", "--load", "y", "--size", "1", "2"]
    assert parser.parse_args(arguments).load == ["x", "y"]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


@pytest.mark.skipif(not _installed("opentelemetry.exporter.otlp.proto.grpc.trace_exporter"),
                    reason="needs the tracing extra (the OTLP exporter)")  # fmt: skip
def test_spans_reach_an_otlp_collector_and_are_flushed_on_sigterm(repo, tmp_path):
    from concurrent import futures

    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    spans = []

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            spans.extend(s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans)
            return trace_service_pb2.ExportTraceServiceResponse()

    collector = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), collector)
    port = collector.add_insecure_port("127.0.0.1:0")
    collector.start()
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
    stderr = (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "seedlock", "serve", "--repository", str(repo), "--port", "0", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=ROOT)  # fmt: skip
    try:
        with SegmentationClient(read_address(proc, stderr), timeout=30, retry=NO_RETRY) as seg:
            seg.segment(sample_png(16, 16), model="segmenter")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        collector.stop(0)
    (span,) = [s for s in spans if s.name == "seedlock.v1.Segmentation/Segment"]
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["seedlock.model"].string_value == "segmenter" and attributes["rpc.grpc.status_code"].int_value == 0
