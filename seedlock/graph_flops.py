"""Multiply-accumulate FLOPs of an ONNX graph at concrete input shapes.

:func:`count_flops` substitutes the given input shapes into (a copy of) the
graph, inlines model-local functions (so a custom op defined by one is counted
through what it expands to), runs ONNX shape inference with data propagation,
and counts 2 FLOPs per multiply-accumulate of the ops that carry a model's
arithmetic: Conv, ConvTranspose, MatMul, Gemm (and their integer/quantized
forms), and the gate matrix products of LSTM, GRU and RNN. Elementwise ops,
pooling, normalization and bias additions are not counted: the figure is the
work a GEMM-bound floor is computed from.

Where shape inference leaves a counted node's shapes unknown (a shape computed
at run time that data propagation does not follow), the graph is run once with
ONNX Runtime on zero-filled inputs of the given shapes, every such tensor
added as an output, and its real shape is used. Only the top-level graph is
counted (no If/Loop bodies); a counted node whose shapes stay unknown raises
:class:`FlopCountError` rather than being skipped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

CONV_OPS = frozenset({"Conv", "ConvInteger", "QLinearConv"})
CONV_TRANSPOSE_OPS = frozenset({"ConvTranspose"})
MATMUL_OPS = frozenset({"MatMul", "MatMulInteger", "QLinearMatMul"})
GEMM_OPS = frozenset({"Gemm"})
RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})
COUNTED_OPS = CONV_OPS | CONV_TRANSPOSE_OPS | MATMUL_OPS | GEMM_OPS | RECURRENT_OPS
# where the data and weight operands sit in each op's inputs
_OPERANDS = {"QLinearConv": (0, 3), "QLinearMatMul": (0, 3)}


class FlopCountError(ValueError):
    """The graph's FLOPs cannot be counted at these shapes."""


@dataclass(frozen=True)
class GraphFlops:
    """FLOPs (2 x multiply-accumulates) of one graph at one set of input shapes."""

    flops: int
    by_op: dict[str, int] = field(default_factory=dict)
    nodes: int = 0

    @property
    def gflop(self) -> float:
        return self.flops / 1e9


def count_flops(model: Any, input_shapes: Mapping[str, Sequence[int]]) -> GraphFlops:
    """FLOPs of ``model`` (an ``onnx.ModelProto``, its bytes or a path) with
    its inputs at ``input_shapes`` (name -> concrete dims).

    Raises :class:`FlopCountError` for an input name the graph lacks, a
    non-positive dim, or a counted node whose shapes stay unknown."""
    import onnx
    import onnx.inliner
    import onnx.shape_inference

    proto = _load(model)
    if proto.functions:
        proto = onnx.inliner.inline_local_functions(proto)
    graph = proto.graph
    initializers = {t.name: list(t.dims) for t in graph.initializer}
    inputs = {i.name: i for i in graph.input}
    unknown = sorted(set(input_shapes) - set(inputs))
    if unknown:
        raise FlopCountError(f"the graph has no input(s) {unknown} (inputs: {sorted(inputs)})")
    for name, dims in input_shapes.items():
        dims = [int(d) for d in dims]
        if any(d <= 0 for d in dims):
            raise FlopCountError(f"input {name!r}: dims must be positive, got {dims}")
        tensor_type = inputs[name].type.tensor_type
        tensor_type.ClearField("shape")
        for d in dims:
            tensor_type.shape.dim.add().dim_value = d
    # shapes recorded at export hold symbolic dims: infer them afresh from the concrete inputs
    del graph.value_info[:]
    for out in graph.output:
        out.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises InferenceError and others
        raise FlopCountError(f"ONNX shape inference failed at {dict(input_shapes)}: {exc}") from None
    shapes: dict[str, list[int | None]] = {name: list(dims) for name, dims in initializers.items()}
    for info in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape"):
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]

    counted = [n for n in inferred.graph.node if n.op_type in COUNTED_OPS and n.domain in ("", "ai.onnx")]
    unknown_shapes = sorted({name for n in counted for name in _operands(n) if not _concrete(shapes.get(name))})
    if unknown_shapes:
        shapes.update(_runtime_shapes(inferred, input_shapes, unknown_shapes))

    total, by_op = 0, {}
    for node in counted:
        flops = 2 * _macs(node, shapes)
        total += flops
        by_op[node.op_type] = by_op.get(node.op_type, 0) + flops
    return GraphFlops(flops=total, by_op=by_op, nodes=len(counted))


def _concrete(dims: list[int | None] | None) -> bool:
    return dims is not None and all(d is not None and d > 0 for d in dims)


def _operands(node: Any) -> list[str]:
    """The tensors whose shapes :func:`_macs` reads for ``node``."""
    data, weight = _OPERANDS.get(node.op_type, (0, 1))
    if node.op_type in RECURRENT_OPS:
        names = [node.input[0], node.input[1], node.input[2]]
    elif node.op_type in CONV_OPS:
        names = [node.output[0], node.input[weight]]
    elif node.op_type in CONV_TRANSPOSE_OPS:
        names = [node.input[data], node.input[weight]]
    else:
        names = [node.input[data], node.output[0]]
    return [n for n in names if n]


def _runtime_shapes(model: Any, input_shapes: Mapping[str, Sequence[int]], names: list[str]) -> dict[str, list[int]]:
    """Shapes of ``names`` from one ONNX Runtime run on zero-filled inputs of ``input_shapes``."""
    import numpy as np
    from onnx import helper

    graph_inputs = {i.name: i for i in model.graph.input}
    initializers = {t.name for t in model.graph.initializer}
    missing = [name for name in graph_inputs if name not in initializers and name not in input_shapes]
    if missing:
        raise FlopCountError(f"shape inference left {names} unknown, and inputs {missing} have no given shape "
                             "to run the graph with")
    try:
        import onnxruntime as ort

        probe = type(model)()
        probe.CopyFrom(model)
        outputs = {o.name for o in probe.graph.output}
        probe.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names
                                  if n not in outputs and n not in graph_inputs)  # fmt: skip
        feeds = {}
        for name, dims in input_shapes.items():
            dtype = helper.tensor_dtype_to_np_dtype(graph_inputs[name].type.tensor_type.elem_type)
            feeds[name] = np.zeros([int(d) for d in dims], dtype=dtype)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor as written
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        wanted = [o.name for o in session.get_outputs() if o.name in names]
        found = {name: list(value.shape) for name, value in zip(wanted, session.run(wanted, feeds))}
    except Exception as exc:  # noqa: BLE001 - no onnxruntime, or the graph does not run on zeros
        raise FlopCountError(f"shape inference left {names} unknown and running the graph to learn them failed: "
                             f"{type(exc).__name__}: {exc}") from None
    found.update({name: [int(d) for d in input_shapes[name]] for name in names if name in input_shapes})
    return found


def _load(model: Any) -> Any:
    import onnx

    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    return onnx.load(str(Path(model)))


def _shape(node: Any, index: int, shapes: Mapping[str, list[int | None]]) -> list[int]:
    name = node.input[index] if index < len(node.input) else ""
    dims = shapes.get(name)
    if not name or dims is None or any(d is None or d <= 0 for d in dims):
        raise FlopCountError(
            f"{node.op_type} node {node.name or '(unnamed)'}: the shape of {name or f'input {index}'} is unknown "
            f"after shape inference ({dims})"
        )
    return [int(d) for d in dims]


def _out_shape(node: Any, shapes: Mapping[str, list[int | None]]) -> list[int]:
    dims = shapes.get(node.output[0])
    if dims is None or any(d is None or d <= 0 for d in dims):
        raise FlopCountError(f"{node.op_type} node {node.name or '(unnamed)'}: the shape of its output "
                             f"{node.output[0]} is unknown after shape inference ({dims})")
    return [int(d) for d in dims]


def _attr(node: Any, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def _macs(node: Any, shapes: Mapping[str, list[int | None]]) -> int:
    data, weight = _OPERANDS.get(node.op_type, (0, 1))
    if node.op_type in CONV_OPS:
        # out [N, M, *S_out], W [M, C/g, *K]: each output element takes C/g * prod(K) MACs
        out, w = _out_shape(node, shapes), _shape(node, weight, shapes)
        return math.prod(out) * math.prod(w[1:])
    if node.op_type in CONV_TRANSPOSE_OPS:
        # x [N, C, *S_in], W [C, M/g, *K]: each input element scatters into M/g * prod(K) outputs
        x, w = _shape(node, data, shapes), _shape(node, weight, shapes)
        return math.prod(x) * math.prod(w[1:])
    if node.op_type in MATMUL_OPS:
        # numpy matmul semantics: every output element is a dot product of length K = A's last dim
        a, out = _shape(node, data, shapes), _out_shape(node, shapes)
        return math.prod(out) * a[-1]
    if node.op_type in RECURRENT_OPS:
        # X [seq, batch, I] ([batch, seq, I] with layout=1), W [dirs, G*H, I], R [dirs, G*H, H]:
        # every step of every row multiplies the input by W and the hidden state by R, in each direction
        x, w, r = _shape(node, 0, shapes), _shape(node, 1, shapes), _shape(node, 2, shapes)
        steps = x[0] * x[1]
        return steps * (math.prod(w) + math.prod(r))
    # Gemm: A [M, K] (or [K, M] with transA), out [M, N]
    a, out = _shape(node, 0, shapes), _out_shape(node, shapes)
    k = a[0] if _attr(node, "transA", 0) else a[1]
    return math.prod(out) * k
