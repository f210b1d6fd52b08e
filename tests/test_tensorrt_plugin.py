"""The TensorRT plugin for ai.seedlock::BiActivation: its pure shape/launch
helpers (no TensorRT needed), the errors when TensorRT is missing, and
registration where TensorRT is installed."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from seedlock.export import tensorrt_plugin as tp


def test_identifiers_match_the_onnx_node():
    from seedlock.export.bi_activation_onnx import OP_TYPE

    assert tp.PLUGIN_NAME == OP_TYPE  # the parser maps node.op_type == plugin name
    assert tp.PLUGIN_ID == "seedlock::BiActivation" == f"{tp.PLUGIN_NAMESPACE}::{tp.PLUGIN_NAME}"
    assert tp.MIN_TENSORRT == (10, 9)


def test_module_imports_without_tensorrt_or_triton():
    """The engine builder imports the identifiers before it knows TensorRT is there."""
    code = (
        "import sys; sys.modules['tensorrt'] = None; sys.modules['triton'] = None\n"
        "import seedlock.export.tensorrt_plugin as tp; print(tp.PLUGIN_ID)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "seedlock::BiActivation"


def test_output_dims():
    assert tp.output_dims((2, 3, 4, 5)) == (2, 6, 4, 5)
    assert tp.output_dims([1, 8]) == (1, 16)
    assert tp.output_dims((3, 5, 7, 9, 11)) == (3, 10, 7, 9, 11)
    with pytest.raises(ValueError, match="channel axis"):
        tp.output_dims((7,))


def test_element_counts():
    assert tp.element_counts((3, 5, 7, 9)) == (945, 315)
    assert tp.element_counts((4, 6)) == (24, 6)
    assert tp.element_counts((0, 3, 2)) == (0, 6)
    with pytest.raises(ValueError, match="channel axis"):
        tp.element_counts(())


def test_kernel_alpha():
    assert tp.kernel_alpha("relu", 1.0) == 0.0  # relu is elu with alpha 0, whatever the node says
    assert tp.kernel_alpha("elu", 0.5) == 0.5
    assert tp.kernel_alpha("elu", 1) == 1.0
    with pytest.raises(ValueError, match="one of"):
        tp.kernel_alpha("gelu", 1.0)
    # TensorRT passes attributes to aot_impl positionally, in the node's order
    with pytest.raises(ValueError, match="'base' .* before 'alpha'"):
        tp.kernel_alpha(0.5, "elu")


def test_kernel_dtype():
    assert tp.kernel_dtype("FLOAT") == "fp32"
    assert tp.kernel_dtype("HALF") == "fp16"
    with pytest.raises(ValueError, match="float32 or float16"):
        tp.kernel_dtype("INT8")


class _Kernel:  # the fields of CompiledKernel that a launch reads
    block, threads, shared = 1024, 128, 0


def test_launch_config():
    cfg = tp.launch_config(945, 315, _Kernel)
    assert cfg == tp.LaunchConfig(grid_x=1, block_x=128, shared_mem=0, extras=(945, 315))
    assert tp.launch_config(1023, 1, _Kernel).grid_x == 1
    assert tp.launch_config(1025, 1, _Kernel).grid_x == 2
    assert tp.launch_config(0, 6, _Kernel).grid_x == 1  # an empty tensor still gets a valid launch
    for numel in (1, 1023, 1024, 1025, 3 * 1024 * 1024 + 5):  # every element covered, at most one spare block
        grid = tp.launch_config(numel, 1, _Kernel).grid_x
        assert numel <= grid * 1024 < numel + 2 * 1024


def test_launch_config_rejects_int32_overflow():
    from seedlock.export.bi_activation_kernel import MAX_ELEMENTS

    assert tp.launch_config(MAX_ELEMENTS, 1, _Kernel).extras[0] == MAX_ELEMENTS
    with pytest.raises(ValueError, match="int32"):
        tp.launch_config(MAX_ELEMENTS + 1, 1, _Kernel)


class _Sym:
    """A stand-in for TensorRT's ShapeExpr: supports + // * and nothing else."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __add__(self, other):
        return _Sym(f"({self.text} + {other})")

    def __floordiv__(self, other):
        return _Sym(f"({self.text} // {other})")

    def __mul__(self, other):
        return _Sym(f"({self.text} * {getattr(other, 'text', other)})")


def test_helpers_accept_symbolic_dimensions():
    dims = [_Sym(d) for d in "NCHW"]
    assert tp.output_dims(dims)[1].text == "(C * 2)"
    numel, chw = tp.element_counts(dims)
    assert (numel.text, chw.text) == ("(N * ((C * H) * W))", "((C * H) * W)")
    cfg = tp.launch_config(numel, chw, _Kernel)
    assert cfg.grid_x.text == f"(({numel.text} // 1024) + 1)"
    assert cfg.extras == (numel, chw)


def test_launch_config_fits_the_compiled_kernel():
    pytest.importorskip("triton", reason="compiling the kernel needs OpenAI Triton")
    from seedlock.export.bi_activation_kernel import compile_ptx

    kernel = compile_ptx("fp16", 1.0, (9, 0))
    cfg = tp.launch_config(*tp.element_counts((3, 5, 7, 9)), kernel)
    assert f".reqntid {cfg.block_x}" in kernel.ptx
    assert cfg.grid_x * kernel.block >= 945 > (cfg.grid_x - 1) * kernel.block


# -- registration -------------------------------------------------------------
def test_register_without_tensorrt_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    monkeypatch.setattr(tp, "_registered", False)
    with pytest.raises(tp.PluginUnavailable) as info:
        tp.register()
    message = str(info.value)
    assert "seedlock[gpu]" in message and "TensorRT >= 10.9" in message
    assert isinstance(info.value, RuntimeError)


def test_register_with_old_tensorrt_names_the_version(monkeypatch):
    old = types.ModuleType("tensorrt")
    old.__version__ = "10.8.0.43"
    monkeypatch.setitem(sys.modules, "tensorrt", old)
    monkeypatch.setattr(tp, "_registered", False)
    with pytest.raises(tp.PluginUnavailable, match=r"needs TensorRT >= 10\.9 \(found 10\.8\.0\.43\)"):
        tp.register()


def _tensorrt():
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001  (bindings without their libraries fail oddly)
        pytest.skip(f"TensorRT is not importable here ({exc})")
    return trt


def test_register_adds_the_creator_once():
    trt = _tensorrt()
    pytest.importorskip("triton", reason="the plugin compiles its kernel with OpenAI Triton")
    tp.register()
    tp.register()  # idempotent
    creator = trt.get_plugin_registry().get_creator(tp.PLUGIN_NAME, tp.PLUGIN_VERSION, tp.PLUGIN_NAMESPACE)
    assert creator is not None
    assert creator.name == tp.PLUGIN_NAME and creator.plugin_namespace == tp.PLUGIN_NAMESPACE
