"""`seedlock bench backends` on the CPU fast paths (ORT int8, OpenVINO fp32/bf16/int8),
the graph FLOP counter and the GEMM peaks it is judged against."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import run_cli
from onnx import TensorProto, helper, numpy_helper

from seedlock.backends_bench import BACKENDS, CPU_PRECISION, REFERENCE, agreement, input_shapes
from seedlock.graph_flops import FlopCountError, count_flops


# -- graph_flops ---------------------------------------------------------------------------
def conv_matmul_model() -> onnx.ModelProto:
    """x [N, 3, H, W] -> Conv 3->4, 3x3, pad 1 -> Relu -> GlobalAveragePool -> Flatten [N, 4]
    -> MatMul [4, 10] -> Add bias: dynamic N, H and W."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    m = numpy_helper.from_array(rng.standard_normal((4, 10)).astype(np.float32), "m")
    b = numpy_helper.from_array(rng.standard_normal((10,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "m"], ["y0"]),
        helper.make_node("Add", ["y0", "b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "conv_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=[w, m, b],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("n, h, w", [(1, 8, 8), (2, 8, 8), (2, 16, 12)])
def test_graph_flops_counts_conv_and_matmul_by_hand(n, h, w):
    counted = count_flops(conv_matmul_model(), {"x": [n, 3, h, w]})
    conv_macs = n * 4 * h * w * (3 * 3 * 3)  # each of N*4*H*W outputs: C_in * kh * kw MACs
    matmul_macs = n * 10 * 4  # [N, 4] @ [4, 10]
    assert counted.by_op == {"Conv": 2 * conv_macs, "MatMul": 2 * matmul_macs}  # Relu, pool, Add not counted
    assert counted.flops == 2 * (conv_macs + matmul_macs) and counted.nodes == 2
    assert counted.gflop == pytest.approx(counted.flops / 1e9)


def test_graph_flops_conv_transpose_gemm_and_groups():
    rng = np.random.default_rng(1)
    init = [
        numpy_helper.from_array(rng.standard_normal((8, 2, 3, 3)).astype(np.float32), "wg"),  # groups=4: 8 in, 8 out
        numpy_helper.from_array(rng.standard_normal((8, 5, 2, 2)).astype(np.float32), "wt"),  # 8 in -> 5 out, x2
        numpy_helper.from_array(rng.standard_normal((7, 5 * 12 * 12)).astype(np.float32), "g"),  # Gemm B, transB
    ]
    nodes = [
        helper.make_node("Conv", ["x", "wg"], ["c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], group=4),
        helper.make_node("ConvTranspose", ["c", "wt"], ["t"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["t"], ["f"]),
        helper.make_node("Gemm", ["f", "g"], ["y"], transB=1),
    ]
    graph = helper.make_graph(nodes, "mixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 7])], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    counted = count_flops(model.SerializeToString(), {"x": [3, 8, 12, 12]})
    conv = 3 * 8 * 6 * 6 * (2 * 3 * 3)  # out [3, 8, 6, 6], each C_in/g * k * k
    deconv = 3 * 8 * 6 * 6 * (5 * 2 * 2)  # in [3, 8, 6, 6], each scatters into M * k * k
    gemm = 3 * 7 * (5 * 12 * 12)
    assert counted.by_op == {"Conv": 2 * conv, "ConvTranspose": 2 * deconv, "Gemm": 2 * gemm}


def test_graph_flops_counts_recurrent_gates():
    rng = np.random.default_rng(2)
    init = [numpy_helper.from_array(rng.standard_normal((1, 20, 4)).astype(np.float32), "W"),  # 4 gates x hidden 5
            numpy_helper.from_array(rng.standard_normal((1, 20, 5)).astype(np.float32), "R")]
    node = helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=5)
    graph = helper.make_graph([node], "lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["S", "N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    counted = count_flops(model, {"x": [3, 2, 4]})
    assert counted.by_op == {"LSTM": 2 * 3 * 2 * (20 * 4 + 20 * 5)}  # per step and row: W x and R h


def test_graph_flops_runs_the_graph_where_shape_inference_stops(monkeypatch):
    """A reshape to a shape computed at run time (ReduceProd, which ONNX data propagation
    does not follow): the MatMul's input shape comes from one ONNX Runtime run."""
    import seedlock.graph_flops as graph_flops

    consts = {"w": np.ones((12, 5), np.float32), "one": np.array([1]), "three": np.array([3]), "zero": np.array([0])}
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "one", "three"], ["tail"]),
        helper.make_node("ReduceProd", ["tail"], ["p"], keepdims=1),
        helper.make_node("Slice", ["s", "zero", "one"], ["n"]),
        helper.make_node("Concat", ["n", "p"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "reshape", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
                              initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    asked = []
    real = graph_flops._runtime_shapes
    monkeypatch.setattr(graph_flops, "_runtime_shapes", lambda m, shapes, names: asked.append(names) or real(m, shapes, names))
    assert count_flops(model, {"x": [2, 4, 3]}).by_op == {"MatMul": 2 * (2 * 5 * 12)}
    assert asked == [["f"]]


def test_graph_flops_refuses_what_it_cannot_count():
    with pytest.raises(FlopCountError, match="no input"):
        count_flops(conv_matmul_model(), {"image": [1, 3, 8, 8]})
    with pytest.raises(FlopCountError, match="unknown"):  # H and W left symbolic
        count_flops(conv_matmul_model(), {})


def test_graph_flops_of_the_exported_segmenter_match_the_shapes_onnx_runtime_computes(segmenter_repository):
    """The tiny U-Net (bi-activation functions, ConvTranspose, dynamic H/W) at a size other than its export's,
    against the FLOPs computed from the shapes ONNX Runtime gives every Conv/ConvTranspose output."""
    path = segmenter_repository / "segmenter" / "1" / "model.onnx"
    shape = [2, 3, 40, 48]
    counted = count_flops(path, {"image": shape})

    model = onnx.load(path)
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    known = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    wanted = dict.fromkeys(name for n in nodes for name in (n.input[0], n.output[0]) if name not in known)
    model.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in wanted)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    image = np.zeros(shape, np.float32)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": image})))
    got["image"] = image
    expected = 0
    for n in nodes:
        w = weights[n.input[1]]
        if n.op_type == "Conv":  # every output element: C_in/g * prod(K) MACs
            expected += 2 * math.prod(got[n.output[0]].shape) * math.prod(w[1:])
        else:  # every input element scatters into M/g * prod(K) outputs
            expected += 2 * math.prod(got[n.input[0]].shape) * math.prod(w[1:])
    assert counted.nodes == len(nodes) and counted.flops == expected > 0


# -- agreement -----------------------------------------------------------------------------
def test_agreement_measures_relative_error_and_argmax():
    ref = np.zeros((1, 3, 2, 2), np.float32)
    ref[0, 0] = 4.0  # class 0 everywhere, peak magnitude 4
    out = ref.copy()
    out[0, 1, 0, 0] = 5.0  # one of four positions now says class 1; error 5
    got = agreement([ref, np.arange(4.0)], [out, np.arange(4.0) + 0.5], ["logits", "vector"])
    assert got["outputs"]["logits"] == {"max_abs_err": 5.0, "ref_peak": 4.0, "max_rel_err": 1.25, "argmax_agreement": 0.75}
    assert "argmax_agreement" not in got["outputs"]["vector"] and got["outputs"]["vector"]["max_rel_err"] == pytest.approx(0.5 / 3)
    assert got["max_rel_err"] == 1.25 and got["argmax_agreement"] == 0.75


def test_floors_use_the_better_gemm_peak_and_warn_when_the_host_was_busy():
    from seedlock.backends_bench import _add_floors

    point = {"available": True, "gflop": 2.0, "median_ms": 40.0}
    report = {
        "gemm_peaks": {"start": {"peak_gflops": {"fp32": 50.0, "bf16": 100.0}}, "end": {"peak_gflops": {"fp32": 100.0}}},
        "backends": {"openvino-fp32": {"graphs": {"model": {"1": dict(point)}}},
                     "onnxruntime-cuda": {"graphs": {"model": {"1": dict(point)}}}},
    }  # fmt: skip
    _add_floors(report)
    assert report["gemm_peaks"]["peak_gflops"] == {"fp32": 100.0, "bf16": 100.0}
    cpu = report["backends"]["openvino-fp32"]["graphs"]["model"]["1"]
    assert cpu["floor_ms"] == pytest.approx(20.0) and cpu["x_floor"] == pytest.approx(2.0) and cpu["floor_precision"] == "fp32"
    assert "floor_ms" not in report["backends"]["onnxruntime-cuda"]["graphs"]["model"]["1"]  # no CPU floor for a GPU
    assert "50%" in report["warnings"][0]


def test_input_shapes_take_the_size_option_for_dynamic_height_and_width(segmenter_repository):
    from seedlock.core.repository import load_version

    manifest = load_version(segmenter_repository, "segmenter").manifest
    size = manifest.preprocess["size"]
    assert input_shapes(manifest, "model", 4) == {"image": (4, 3, size, size)}
    assert input_shapes(manifest, "model", 2, size=48) == {"image": (2, 3, 48, 48)}


# -- the CLI -------------------------------------------------------------------------------
def _point_ok(point: dict) -> bool:
    return point["available"] and point["median_ms"] > 0 and point["runs"] == 4


def test_bench_backends_cpu_fast_paths_report_speed_agreement_and_floors(segmenter_repository, tmp_path):
    from seedlock.core.openvino_runtime import openvino_unavailable

    out = tmp_path / "backends.json"
    proc = run_cli("bench", "backends", "--repository", str(segmenter_repository), "--model", "segmenter",
                   "--batches", "1,2", "--size", "48", "--runs", "4", "--warmup", "1", "--rounds", "2",
                   "--threads", "1", "--gemm-n", "256", "--json", str(out), timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["size"] == 48 and report["intra_op_threads_cpu"] == 1 and report["reference"] == REFERENCE
    assert set(report["backends"]) == set(BACKENDS)
    gflop = report["gflop"]["model"]
    assert 0 < gflop["1"] and gflop["2"] == pytest.approx(2 * gflop["1"])
    path = segmenter_repository / "segmenter" / "1" / "model.onnx"
    assert gflop["1"] == pytest.approx(count_flops(path, {"image": [1, 3, 48, 48]}).gflop)

    peaks = report["gemm_peaks"]
    assert {"start", "end"} <= set(peaks) and peaks["start"]["threads"] == 1 and peaks["start"]["n"] == 256
    assert peaks["peak_gflops"]["fp32"] > 0 and peaks["peak_gflops"]["int8"] > 0
    assert len(report["load_average"]["start"]) == 3 and len(report["load_average"]["end"]) == 3
    assert report["host"]["model_name"] and "openvino_capabilities" in report["host"]

    for name in BACKENDS:
        entry = report["backends"][name]
        if not entry["available"]:
            assert entry["reason"], name
            continue
        for batch in ("1", "2"):
            point = entry["graphs"]["model"][batch]
            assert point["available"] and _point_ok(point), (name, point)
            assert point["items_per_s"] == pytest.approx(int(batch) * 1e3 / point["median_ms"])
            assert point["speedup_vs_ort_fp32"] > 0 and point["gflop"] == gflop[batch]
            assert 0 <= point["agreement"]["argmax_agreement"] <= 1 and point["agreement"]["max_rel_err"] >= 0
            precision = CPU_PRECISION.get(name)
            if precision and precision in peaks["peak_gflops"]:
                assert point["floor_ms"] == pytest.approx(gflop[batch] / peaks["peak_gflops"][precision] * 1e3)
                assert point["x_floor"] == pytest.approx(point["median_ms"] / point["floor_ms"])

    reference = report["backends"][REFERENCE]["graphs"]["model"]["1"]
    assert reference["speedup_vs_ort_fp32"] == pytest.approx(1.0) and reference["agreement"]["max_rel_err"] == 0.0
    # int8 quantization only needs onnx and ONNX Runtime, both here
    assert report["backends"]["onnxruntime-int8"]["available"], report["backends"]["onnxruntime-int8"]
    for precision in ("fp32", "bf16", "int8"):
        entry = report["backends"][f"openvino-{precision}"]
        reason = openvino_unavailable(precision)
        assert entry["available"] is (reason is None), entry
    if report["backends"]["openvino-fp32"]["available"]:
        for batch in ("1", "2"):
            agree = report["backends"]["openvino-fp32"]["graphs"]["model"][batch]["agreement"]
            assert agree["argmax_agreement"] >= 0.999 and agree["max_rel_err"] < 1e-4, agree
    # the summary table: one line per available point
    rows = {("model", b, n) for b in ("1", "2") for n in BACKENDS}
    table = [line for line in proc.stdout.splitlines() if tuple(line.split()[:3]) in rows]
    available = [n for n in BACKENDS if report["backends"][n]["available"]]
    assert len(table) == 2 * len(available)


def test_bench_backends_without_onnx_reports_reasons(segmenter_repository, tmp_path):
    """Where the onnx package is missing, int8 quantization, FLOP counts and GEMM peaks say so; the rest runs."""
    shadow = tmp_path / "shadow" / "onnx"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('onnx is not installed here')\n")
    out = tmp_path / "backends.json"
    env = {"PYTHONPATH": os.pathsep.join([str(shadow.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = run_cli("bench", "backends", "--repository", str(segmenter_repository), "--model", "segmenter",
                   "--backends", "onnxruntime-cpu,onnxruntime-int8,openvino-int8", "--batches", "1",
                   "--runs", "2", "--warmup", "1", "--threads", "1", "--gemm-n", "128", "--json", str(out),
                   env=env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["backends"][REFERENCE]["graphs"]["model"]["1"]["median_ms"] > 0
    for name in ("onnxruntime-int8", "openvino-int8"):
        assert not report["backends"][name]["available"] and "onnx" in report["backends"][name]["reason"]
    assert report["gflop"]["model"]["1"] is None and "onnx package" in report["gflop_errors"]["model"]["1"]
    assert all(m["reason"] for m in report["gemm_peaks"]["start"]["measures"])


def test_bench_backends_refuses_unknown_backends_and_odd_sizes(segmenter_repository):
    proc = run_cli("bench", "backends", "--repository", str(segmenter_repository), "--model", "segmenter",
                   "--backends", "onnxruntime-cpu,tflite")
    assert proc.returncode == 2 and "unknown backend" in proc.stderr and "tflite" in proc.stderr
    proc = run_cli("bench", "backends", "--repository", str(segmenter_repository), "--model", "segmenter",
                   "--size", "47")
    assert proc.returncode == 2 and "divisor" in proc.stderr


def test_other_load_is_the_share_of_cpus_other_processes_took():
    from seedlock.cpu_peaks import CpuSample, other_load

    cores = os.cpu_count() or 1
    # 2 s of wall: the machine was busy 1.5 CPU-s, of which this process took 0.5 CPU-s
    assert other_load(CpuSample(10.0, 100.0, 3.0), CpuSample(12.0, 101.5, 3.5)) == pytest.approx(round(1.0 / (2 * cores), 3))
    assert other_load(CpuSample(10.0, 100.0, 3.0), CpuSample(12.0, 100.5, 3.5)) == 0.0
    assert other_load(None, CpuSample(1.0, 1.0, 1.0)) is None
