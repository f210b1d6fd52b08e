"""TensorRT engines from exported models: what runs everywhere (graph
preparation, fp16 rewrite, optimization profiles, the CLI's refusals, the
backend bench on ONNX Runtime CPU), and the GPU half, which skips with the
reason on hosts without TensorRT and an NVIDIA GPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import run_cli
from onnx import TensorProto, helper, numpy_helper

from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.core.repository import load_version
from seedlock.export import parity
from seedlock.export.bi_activation_onnx import DOMAIN, OP_TYPE
from seedlock.export.errors import ExportError
from seedlock.export.onnx_fp16 import to_float16
from seedlock.export.tensorrt_engine import EngineOptions, prepare_onnx, profile_shapes


@pytest.fixture()
def repo(segmenter_repository, tmp_path) -> Path:
    """A private copy of the tiny bi-elu U-Net repository (tests here may add engines)."""
    dst = tmp_path / "repository"
    shutil.copytree(segmenter_repository, dst)
    return dst


def bi_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE]


def cpu(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


# -- the graph TensorRT parses --------------------------------------------------
def test_prepare_marks_every_bi_activation_for_the_plugin_and_drops_the_function(repo):
    original = onnx.load(repo / "segmenter" / "1" / "model.onnx")
    before = original.SerializeToString()
    prepared, count = prepare_onnx(original)
    assert count == len(bi_nodes(original)) > 0
    for node in bi_nodes(prepared):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["plugin_namespace"] == b"seedlock" and attrs["aot"] == 1
        assert attrs["base"] in (b"elu", b"relu") and "alpha" in attrs
    # Without the function a parser lacking the plugin fails instead of inlining five layers.
    assert not [f for f in prepared.functions if f.name == OP_TYPE]
    assert original.SerializeToString() == before  # the repository's graph is untouched


def test_fp16_rewrite_keeps_float32_io_and_stays_within_1e_2(repo):
    model = onnx.load(repo / "segmenter" / "1" / "model.onnx")
    half = to_float16(model)
    onnx.checker.check_model(half, full_check=True)
    assert all(i.data_type != TensorProto.FLOAT for i in half.graph.initializer)
    assert [i.type.tensor_type.elem_type for i in half.graph.input] == [TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in half.graph.output] == [TensorProto.FLOAT]
    # ONNX Runtime runs the fp16 graph (bi-activation function included) on the CPU.
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    full = cpu(model).run(None, {"image": x})[0]
    halfway = cpu(half).run(None, {"image": x})[0]
    assert halfway.dtype == np.float32
    assert parity.compare_relative("fp16", full, halfway, 1e-2).ok
    assert not parity.compare_relative("fp16", full, halfway, 1e-5).ok  # it really computed in fp16


def test_fp16_rewrite_leaves_inputs_the_spec_types_as_float32():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    weight = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Resize", ["c", "", "scales"], ["y"], mode="nearest")],
        "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])], initializer=[scales, weight],
    )  # fmt: skip
    half = to_float16(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    types = {i.name: i.data_type for i in half.graph.initializer}
    assert types == {"scales": TensorProto.FLOAT, "w": TensorProto.FLOAT16}
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(cpu(half).run(None, {"x": x})[0], np.repeat(np.repeat(x, 2, 2), 2, 3))


# -- optimization profiles --------------------------------------------------------
def test_profile_takes_the_batch_range_and_fixes_the_letterbox_size(repo):
    manifest = load_version(repo, "segmenter").manifest
    shapes = profile_shapes(manifest, "model", EngineOptions(min_batch=1, opt_batch=4, max_batch=16))
    assert shapes == {"image": {"min": [1, 3, 32, 32], "opt": [4, 3, 32, 32], "max": [16, 3, 32, 32]}}


def test_profile_of_token_inputs_and_unresolvable_axes():
    graph = GraphSpec("decoder_step.onnx", [TensorSpec("tokens", "int64", [-1, -1]), TensorSpec("h", "float32", [-1, 8])], [])
    manifest = Manifest("captioner", 1, "captioning", {"decoder_step": graph}, postprocess={"max_length": 20})
    shapes = profile_shapes(manifest, "decoder_step", EngineOptions(max_batch=3))
    assert shapes["tokens"] == {"min": [1, 1], "opt": [1, 10], "max": [3, 20]}
    assert shapes["h"] == {"min": [1, 8], "opt": [1, 8], "max": [3, 8]}
    manifest.postprocess.clear()
    with pytest.raises(ExportError, match="axis 1 is dynamic"):
        profile_shapes(manifest, "decoder_step", EngineOptions())


@pytest.mark.parametrize("kwargs", [dict(min_batch=2, opt_batch=1), dict(opt_batch=9, max_batch=8), dict(workspace_mib=1)])
def test_engine_options_reject_impossible_values(kwargs):
    with pytest.raises(ExportError):
        EngineOptions(**kwargs)


def test_relative_tolerance_scales_with_the_output_peak():
    ref = np.array([100.0, -50.0, 0.0])
    assert parity.compare_relative("a", ref, ref + 0.009, 1e-4).ok  # 0.009 <= 1e-4 * 100
    assert not parity.compare_relative("b", ref, ref + 0.011, 1e-4).ok
    assert not parity.compare_relative("c", ref, ref[:2], 1e-4).ok  # shape mismatch never passes


# -- the CLI where no engine can be built ---------------------------------------------
def _tensorrt_ready() -> str | None:
    from seedlock.core.tensorrt_runtime import tensorrt_unavailable

    return tensorrt_unavailable()


def test_export_trt_without_tensorrt_or_gpu_says_why_and_writes_nothing(repo):
    reason = _tensorrt_ready()
    if reason is None:
        pytest.skip("this host can build engines; the refusal path is not reachable")
    folder = repo / "segmenter" / "1"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    proc = run_cli("export", "trt", str(repo / "segmenter"), "--fp16")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and ("TensorRT" in proc.stderr or "GPU" in proc.stderr), proc.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_export_trt_rejects_bad_batch_ranges_before_touching_tensorrt(repo):
    proc = run_cli("export", "trt", str(repo / "segmenter"), "--min-batch", "4", "--max-batch", "2")
    assert proc.returncode == 2 and "1 <= min <= opt <= max" in proc.stderr


def test_verify_backends_errors_name_the_missing_piece(repo):
    model = str(repo / "segmenter")
    proc = run_cli("export", "verify", model, "--backends", "onnxruntime")
    assert proc.returncode == 2 and "at least two" in proc.stderr
    proc = run_cli("export", "verify", model, "--backends", "onnxruntime,tensorflow")
    assert proc.returncode == 2 and "unknown backend" in proc.stderr
    proc = run_cli("export", "verify", model, "--backends", "onnxruntime,tensorrt")
    assert proc.returncode == 2 and "no TensorRT engine" in proc.stderr and "seedlock export trt" in proc.stderr
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        proc = run_cli("export", "verify", model, "--backends", "onnxruntime,onnxruntime-cuda")
        assert proc.returncode == 2 and "CUDAExecutionProvider" in proc.stderr


def test_bench_backends_measures_what_this_host_runs_and_says_why_not_the_rest(repo, tmp_path):
    out = tmp_path / "backends.json"
    proc = run_cli("bench", "backends", "--repository", str(repo), "--model", "segmenter", "--batches", "1,4",
                   "--runs", "3", "--warmup", "1", "--threads", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    cpu_run = report["backends"]["onnxruntime-cpu"]
    assert cpu_run["available"] is True
    for batch in ("1", "4"):
        point = cpu_run["graphs"]["model"][batch]
        assert point["runs"] == 3 and 0 < point["min_ms"] <= point["median_ms"]
        assert point["items_per_s"] == pytest.approx(int(batch) * 1e3 / point["median_ms"])
    for name in ("onnxruntime-cuda", "tensorrt-fp32", "tensorrt-fp16"):
        entry = report["backends"][name]
        if entry["available"]:  # a GPU host
            assert entry["graphs"]["model"]["1"]["median_ms"] > 0
        else:
            assert entry["reason"]


def test_bench_plugin_needs_a_gpu():
    if _tensorrt_ready() is None:
        pytest.skip("this host has TensorRT and a GPU")
    proc = run_cli("bench", "plugin", "--runs", "2")
    assert proc.returncode == 2 and "needs TensorRT and an NVIDIA GPU" in proc.stderr


# -- on a GPU host -------------------------------------------------------------------------
@pytest.fixture()
def gpu():
    reason = _tensorrt_ready()
    if reason:
        pytest.skip(f"needs TensorRT and an NVIDIA GPU: {reason}")


@pytest.mark.gpu
@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_engine_fuses_bi_activation_and_matches_onnxruntime(gpu, repo, fp16):
    from seedlock.export.backends import compare_backends
    from seedlock.export.tensorrt_engine import engine_layers, export_engines, plugin_layers

    records = export_engines(repo / "segmenter", EngineOptions(fp16=fp16, max_batch=4), log=print)
    mv = load_version(repo, "segmenter")  # digests re-pinned, plan included
    record = mv.manifest.engine("model")
    assert records == [record] and record.precision == ("fp16" if fp16 else "fp32")
    assert record.plugins == ["seedlock::BiActivation"] and (mv.folder / "model.plan").is_file()
    nodes = len(bi_nodes(onnx.load(mv.folder / "model.onnx")))
    layers = engine_layers((mv.folder / "model.plan").read_bytes())
    assert len(plugin_layers(layers)) == nodes, [layer.get("LayerType") for layer in layers]
    rows = compare_backends(mv, ["onnxruntime", "tensorrt"])
    assert rows and all(r.ok for r in rows), parity.format_table(rows)
    proc = run_cli("export", "verify", str(repo / "segmenter"), "--backends", "onnxruntime,tensorrt")
    assert proc.returncode == 0 and "verify: PASS" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.gpu
def test_plugin_and_decomposed_engines_agree(gpu, tmp_path):
    import onnx.inliner

    from seedlock.backends_bench import bi_activation_model
    from seedlock.core.tensorrt_runtime import EngineSession
    from seedlock.export.tensorrt_engine import build_engine

    shape = (2, 5, 7, 9)
    model = bi_activation_model(shape, "fp32", alpha=0.5)
    profile = {"x": {"min": list(shape), "opt": list(shape), "max": list(shape)}}
    options = EngineOptions(min_batch=2, opt_batch=2, max_batch=2)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    outputs = {}
    for name, graph, nodes in (("plugin", prepare_onnx(model)[0], 1), ("decomposed", onnx.inliner.inline_local_functions(model), 0)):
        (tmp_path / f"{name}.plan").write_bytes(build_engine(graph.SerializeToString(), profile, options, plugin_nodes=nodes))
        outputs[name] = EngineSession(tmp_path / f"{name}.plan").run(["y"], {"x": x})[0]
    expected = cpu(model).run(None, {"x": x})[0]
    assert parity.compare_relative("plugin", expected, outputs["plugin"], 1e-4).ok
    assert parity.compare_relative("decomposed", expected, outputs["decomposed"], 1e-4).ok
