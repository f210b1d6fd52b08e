"""TensorRT plugin for ``ai.seedlock::BiActivation``: one fused kernel per node.

A Quickly Deployable Plugin (``tensorrt.plugin``) with an ahead-of-time
implementation: at engine build, ``aot_impl`` hands TensorRT the PTX of the
Triton kernel in :mod:`seedlock.export.bi_activation_kernel` with its launch
parameters, and the plan embeds it. Running the engine then needs neither
Python, Triton nor this module (the seedlock server, trtexec); building it
needs TensorRT, Triton and a GPU.

ONNX mapping: TensorRT's parser turns a node into this plugin when
``node.op_type == PLUGIN_NAME`` and the node has the string attribute
``plugin_namespace == PLUGIN_NAMESPACE``; an int attribute ``aot = 1`` selects
the AOT implementation (``seedlock.export.tensorrt_engine`` adds both). The
node's own attributes ``base`` (str) and ``alpha`` (float, 0 for relu) become
the plugin's. TensorRT does not serialize attributes of AOT plugins: they are
baked into the kernel as compile-time constants instead.

Minimum TensorRT 10.9: ``tensorrt.plugin`` with ``aot_impl`` (stable from
10.9), and an ONNX parser that prefers a registered plugin over the node's
model-local function (10.7+).

The shape and launch arithmetic lives in pure helpers (``output_dims``,
``element_counts``, ``launch_config``, ...) that work on ints and on
TensorRT's symbolic shape expressions alike, so tests cover it without
TensorRT; the registered functions are thin adapters around them.
"""

# No `from __future__ import annotations`: tensorrt.plugin inspects the
# registered functions' annotations and needs the classes, not strings.

from typing import Any, NamedTuple, Sequence

PLUGIN_NAMESPACE = "seedlock"
PLUGIN_NAME = "BiActivation"
PLUGIN_VERSION = "1"  # QDPs are always version "1"
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
MIN_TENSORRT = (10, 9)
# Input and output share one type (the '|' makes them dependent), linear layout.
IO_TYPES = "FP32|FP16, FP32|FP16"
BASES = ("relu", "elu")
_KERNEL_DTYPES = {"FLOAT": "fp32", "HALF": "fp16"}  # trt.DataType names

_registered = False


class PluginUnavailable(RuntimeError):
    """TensorRT (or Triton) is missing or too old to register the plugin."""


# -- pure helpers -----------------------------------------------------------
def output_dims(dims: Sequence[Any]) -> tuple[Any, ...]:
    """(N, C, *spatial) -> (N, 2C, *spatial); ints or symbolic dimensions."""
    if len(dims) < 2:
        raise ValueError(f"BiActivation needs a channel axis (axis 1); got a rank-{len(dims)} input")
    return (dims[0], dims[1] * 2, *dims[2:])


def element_counts(dims: Sequence[Any]) -> tuple[Any, Any]:
    """(numel, chw) of an (N, C, *spatial) input: the kernel's two int32 extras."""
    if len(dims) < 2:
        raise ValueError(f"BiActivation needs a channel axis (axis 1); got a rank-{len(dims)} input")
    chw = dims[1]
    for d in dims[2:]:
        chw = chw * d
    return dims[0] * chw, chw


def kernel_alpha(base: str, alpha: float) -> float:
    """The kernel's alpha for the node's attributes: 0 for relu, alpha for elu."""
    if not isinstance(base, str) or not isinstance(alpha, (int, float)):
        # TensorRT hands attributes to aot_impl positionally, in the ONNX node's order.
        raise ValueError(
            f"BiActivation attributes arrived as base={base!r}, alpha={alpha!r}: the ONNX node must list "
            "'base' (string) before 'alpha' (float)"
        )
    if base not in BASES:
        raise ValueError(f"BiActivation base must be one of {BASES}, got {base!r}")
    return 0.0 if base == "relu" else float(alpha)


def kernel_dtype(trt_dtype_name: str) -> str:
    """The kernel dtype ("fp32"/"fp16") for a ``trt.DataType`` name ("FLOAT"/"HALF")."""
    try:
        return _KERNEL_DTYPES[trt_dtype_name]
    except KeyError:
        raise ValueError(
            f"the BiActivation plugin runs float32 or float16 tensors, not {trt_dtype_name}"
        ) from None


class LaunchConfig(NamedTuple):
    """A 1-D launch: grid and block sizes, shared memory, and the int32 extras
    (n_elements, chw) passed between the input and output pointers."""

    grid_x: Any
    block_x: int
    shared_mem: int
    extras: tuple[Any, Any]


def launch_config(numel: Any, chw: Any, kernel: Any) -> LaunchConfig:
    """Launch parameters for ``kernel`` (a ``CompiledKernel``); ``numel`` and
    ``chw`` are ints or TensorRT shape expressions (only // and + are used)."""
    from seedlock.export.bi_activation_kernel import MAX_ELEMENTS

    if isinstance(numel, int) and not 0 <= numel <= MAX_ELEMENTS:
        raise ValueError(f"the BiActivation kernel indexes with int32: at most {MAX_ELEMENTS} elements, got {numel}")
    return LaunchConfig(
        # floor + 1, not cdiv: never a zero-block launch (a CUDA error) for an
        # empty tensor; the spare block when numel % block == 0 is masked off.
        grid_x=numel // kernel.block + 1,
        block_x=kernel.threads,
        shared_mem=kernel.shared,
        extras=(numel, chw),
    )


def build_arch() -> tuple[int, int]:
    """Compute capability (major, minor) of the GPU the engine is built on."""
    from seedlock.core import cuda

    major, minor = cuda.compute_capability().split(".")
    return int(major), int(minor)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _import_tensorrt() -> tuple[Any, Any]:
    need = ".".join(map(str, MIN_TENSORRT))
    install = (
        f"install the gpu extra (pip install 'seedlock[gpu]', TensorRT >= {need} from pypi.nvidia.com) "
        "on a machine with an NVIDIA GPU"
    )
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or bindings without their libraries
        raise PluginUnavailable(f"TensorRT is not usable here ({exc}); {install}") from None
    found = getattr(trt, "__version__", "unknown")
    if _version(found) < MIN_TENSORRT:
        raise PluginUnavailable(f"the BiActivation plugin needs TensorRT >= {need} (found {found}); {install}")
    try:
        import tensorrt.plugin as trtp
    except Exception as exc:
        raise PluginUnavailable(f"tensorrt.plugin failed to import ({exc}); {install}") from None
    if not hasattr(trtp, "aot_impl"):
        raise PluginUnavailable(f"this TensorRT ({found}) has no tensorrt.plugin.aot_impl; {install}")
    try:
        import triton  # noqa: F401  (aot_impl compiles the kernel with it)
    except Exception as exc:
        raise PluginUnavailable(
            f"OpenAI Triton is not usable here ({exc}); the plugin compiles its kernel with it: "
            "install the engines extra (pip install 'seedlock[engines]') or 'triton>=3.3'"
        ) from None
    return trt, trtp


# -- registration -----------------------------------------------------------
def register() -> None:
    """Register the plugin with TensorRT's plugin registry (once per process).

    Raises PluginUnavailable when TensorRT >= 10.9 or Triton is missing."""
    global _registered
    if _registered:
        return
    _trt, trtp = _import_tensorrt()
    try:  # registered already (e.g. this module was reloaded)
        getattr(getattr(trtp.op, PLUGIN_NAMESPACE), PLUGIN_NAME)
        _registered = True
        return
    except AttributeError:
        pass

    from seedlock.export.bi_activation_kernel import compile_ptx

    @trtp.register(PLUGIN_ID)
    def _describe(x: trtp.TensorDesc, base: str, alpha: float) -> trtp.TensorDesc:
        kernel_alpha(base, alpha)  # an unknown base fails at network construction
        y = x.like()
        y.shape_expr[1] = output_dims(tuple(x.shape_expr))[1]
        return y

    @trtp.autotune(PLUGIN_ID)
    def _autotune(x: trtp.TensorDesc, outputs: tuple[trtp.TensorDesc]) -> list[trtp.AutoTuneCombination]:
        return [trtp.AutoTuneCombination(IO_TYPES)]

    @trtp.aot_impl(PLUGIN_ID)
    def _aot_impl(
        x: trtp.TensorDesc, base: str, alpha: float, outputs: tuple[trtp.TensorDesc], tactic: int
    ) -> tuple[bytes, bytes, trtp.KernelLaunchParams, trtp.SymIntExprs]:
        kernel = compile_ptx(kernel_dtype(x.dtype.name), kernel_alpha(base, alpha), build_arch())
        cfg = launch_config(*element_counts(tuple(x.shape_expr)), kernel)
        params = trtp.KernelLaunchParams(grid_x=cfg.grid_x, block_x=cfg.block_x, shared_mem=cfg.shared_mem)
        extras = trtp.SymIntExprs.from_tuple([trtp.SymInt32(e) for e in cfg.extras])
        return kernel.name.encode(), kernel.ptx.encode(), params, extras

    _registered = True
