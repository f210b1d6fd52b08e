"""ONNX form of bi-activation: one ``ai.seedlock::BiActivation`` node per use,
plus a model-local function that defines it from standard ops.

Node: domain ``ai.seedlock``, opset 1, attributes ``base`` (string, "relu" or
"elu") and ``alpha`` (float). ReLU is ELU with alpha 0, so the exporter writes
``alpha = 0.0`` for the relu base and one function body serves both:

    Y = Concat(Elu(X, alpha), Neg(Elu(Neg(X), alpha)), axis=1)

Any ONNX runtime inlines the function (no registration); TensorRT maps the node
to the fused plugin instead (``seedlock.export.tensorrt_engine``).
"""

from __future__ import annotations

import functools

import onnx
from onnx import helper
from onnx.defs import OpSchema

DOMAIN = "ai.seedlock"
OP_TYPE = "BiActivation"
OPSET_VERSION = 1
# Standard-op opset used by the function body and by every exported graph.
ONNX_OPSET = 18

SCHEMA = OpSchema(
    OP_TYPE,
    DOMAIN,
    OPSET_VERSION,
    doc="concat(f(x), -f(-x)) along axis 1; f = relu or elu(alpha).",
    inputs=[OpSchema.FormalParameter("X", "T")],
    outputs=[OpSchema.FormalParameter("Y", "T")],
    type_constraints=[("T", ["tensor(float)", "tensor(double)", "tensor(float16)"], "float tensors")],
    attributes=[
        OpSchema.Attribute("base", OpSchema.AttrType.STRING, "relu or elu"),
        OpSchema.Attribute("alpha", OpSchema.AttrType.FLOAT, "elu alpha (0 for relu)"),
    ],
)



@functools.cache
def _bi_op():
    """An onnxscript Op bound to our schema without registering it with onnx
    globally: the exporter records the node, the function below gives it
    meaning. (onnxscript is imported here so that the TensorRT engine builder,
    which needs only the names and the function, runs without it.)"""
    import onnxscript

    return onnxscript.values.Op(onnxscript.values.Opset(DOMAIN, OPSET_VERSION), OP_TYPE, SCHEMA)


def onnx_alpha(base: str, alpha: float) -> float:
    return 0.0 if base == "relu" else float(alpha)


def translate(x, base: str, alpha: float):
    """torch.onnx custom translation for ``torch.ops.seedlock.bi_activation``."""
    return _bi_op()(x, base=base, alpha=onnx_alpha(base, alpha))


def function_proto() -> onnx.FunctionProto:
    """The model-local definition of ``ai.seedlock::BiActivation`` from standard ops."""

    def ref(name: str, attr_type: int) -> onnx.AttributeProto:
        a = onnx.AttributeProto()
        a.name = name
        a.ref_attr_name = name
        a.type = attr_type
        return a

    elu_pos = helper.make_node("Elu", ["X"], ["pos"])
    elu_pos.attribute.append(ref("alpha", onnx.AttributeProto.FLOAT))
    neg_x = helper.make_node("Neg", ["X"], ["neg_x"])
    elu_neg = helper.make_node("Elu", ["neg_x"], ["elu_neg"])
    elu_neg.attribute.append(ref("alpha", onnx.AttributeProto.FLOAT))
    neg = helper.make_node("Neg", ["elu_neg"], ["neg"])
    cat = helper.make_node("Concat", ["pos", "neg"], ["Y"], axis=1)
    return helper.make_function(
        DOMAIN,
        OP_TYPE,
        inputs=["X"],
        outputs=["Y"],
        nodes=[elu_pos, neg_x, elu_neg, neg, cat],
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        attributes=["base", "alpha"],
        doc_string=SCHEMA.doc,
    )


def attach(model: onnx.ModelProto) -> int:
    """Add the function and the domain import if the graph uses BiActivation.
    Returns the number of BiActivation nodes."""
    count = sum(1 for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE)
    if count:
        if not any(f.domain == DOMAIN and f.name == OP_TYPE for f in model.functions):
            model.functions.append(function_proto())
        if not any(o.domain == DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(DOMAIN, OPSET_VERSION))
    return count
