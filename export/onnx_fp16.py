"""float32 -> float16 rewrite of an ONNX graph, keeping float32 inputs and outputs.

TensorRT 10.12+ builds strongly typed networks (TensorRT 11 has no other kind):
the engine computes in the types the graph says, and the old "allow fp16"
builder flag is gone. An fp16 engine therefore needs an fp16 graph. This
rewrite casts each float32 graph input to float16 on entry and each output
back to float32 on exit, so callers and the manifest keep their float32
contract while every layer in between runs in half precision.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16

# Inputs that the ONNX spec types as float32 whatever the data type
# (op_type -> input indices); their initializers must stay float32.
FLOAT32_ONLY_INPUTS = {"Resize": {1, 2}, "Upsample": {1}}


def _half_tensor(t: TensorProto) -> TensorProto:
    arr = numpy_helper.to_array(t)
    if np.abs(arr).max(initial=0.0) > np.finfo(np.float16).max:
        raise ValueError(f"tensor {t.name!r} has values beyond the float16 range; build a float32 engine instead")
    return numpy_helper.from_array(arr.astype(np.float16), t.name)


def _floats(values) -> list[onnx.ValueInfoProto]:
    return [v for v in values if v.type.tensor_type.elem_type == FLOAT]


def _cast(g: onnx.GraphProto, src: str, dst: str, to: int, produced: bool) -> onnx.NodeProto:
    """A Cast ``src -> dst``; the graph's nodes are renamed around it. For an
    entry cast (``produced`` False) readers of ``src`` read ``dst``; for an exit
    cast the writer and readers of ``dst`` use ``src`` instead."""
    old, new = (dst, src) if produced else (src, dst)
    for node in g.node:
        node.input[:] = [new if name == old else name for name in node.input]
        if produced:
            node.output[:] = [new if name == old else name for name in node.output]
    return helper.make_node("Cast", [src], [dst], to=to, name=f"{dst}__cast")


def to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` computing in float16 between float32 inputs and outputs.

    Initializers, Constant values and Cast targets move to float16; the graph's
    float32 inputs gain a Cast on entry and its outputs one on exit.
    Intermediate value_info is dropped (TensorRT and ONNX Runtime infer it).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    keep_float = {
        n.input[i] for n in g.node for i in FLOAT32_ONLY_INPUTS.get(n.op_type, ()) if i < len(n.input) and n.input[i]
    }
    for i, init in enumerate(g.initializer):
        if init.data_type == FLOAT and init.name not in keep_float:
            g.initializer[i].CopyFrom(_half_tensor(init))
    for node in g.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == FLOAT:
                attr.t.CopyFrom(_half_tensor(attr.t))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
                attr.i = HALF
    del g.value_info[:]

    # Entry casts: consumers of a float32 input read its float16 copy. Exit
    # casts: the producer of a float32 output writes a float16 tensor first.
    entry = [_cast(g, inp.name, f"{inp.name}__fp16", HALF, produced=False) for inp in _floats(g.input)]
    exit_ = [_cast(g, f"{o.name}__fp16", o.name, FLOAT, produced=True) for o in _floats(g.output)]
    nodes = entry + list(g.node) + exit_
    del g.node[:]
    g.node.extend(nodes)
    return out
