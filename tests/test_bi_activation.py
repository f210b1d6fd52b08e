"""Bi-activation: values, shapes, dtypes, gradients, and the ONNX round trip."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from seedlock.export import bi_activation_onnx as bi_onnx
from seedlock.export.onnx_export import count_ops, serialize, to_onnx
from seedlock.train.bi_activation import BiActivation, bi_activation, channel_factor, make_activation


def reference(x: np.ndarray, base: str, alpha: float) -> np.ndarray:
    def f(v):
        if base == "relu":
            return np.maximum(v, 0)
        return np.where(v > 0, v, alpha * (np.exp(v) - 1))

    return np.concatenate([f(x), -f(-x)], axis=1)


@pytest.mark.parametrize("base,alpha", [("relu", 1.0), ("elu", 1.0), ("elu", 0.3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_match_numpy_reference(base, alpha, dtype):
    x = torch.randn(2, 3, 5, 7, dtype=dtype, generator=torch.Generator().manual_seed(0))
    y = BiActivation(base, alpha)(x)
    assert y.dtype == dtype
    assert y.shape == (2, 6, 5, 7)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(y.numpy(), reference(x.numpy(), base, alpha), rtol=tol, atol=tol)


def test_halves_are_pos_and_neg_activation():
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 2.0]]).reshape(1, 5, 1)
    y = bi_activation(x, "relu", 1.0)
    assert y[:, :5].flatten().tolist() == [0.0, 0.0, 0.0, 0.5, 2.0]
    assert y[:, 5:].flatten().tolist() == [-2.0, -0.5, 0.0, 0.0, 0.0]
    # no value is blocked by both halves: pos + neg reconstructs x for relu
    torch.testing.assert_close(y[:, :5] + y[:, 5:], x)


@pytest.mark.parametrize("shape", [(4, 3), (2, 1, 9), (1, 2, 3, 4), (1, 2, 2, 3, 3)])
def test_any_rank_doubles_channel_axis(shape):
    x = torch.randn(*shape)
    y = BiActivation("elu")(x)
    assert y.shape == (shape[0], 2 * shape[1], *shape[2:])


@pytest.mark.parametrize("base", ["relu", "elu"])
def test_gradcheck_float64(base):
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True, generator=torch.Generator().manual_seed(1))
    # keep inputs away from the kink at 0, where the derivative is one-sided
    with torch.no_grad():
        x += torch.sign(x) * 1e-3
    assert torch.autograd.gradcheck(lambda t: bi_activation(t, base, 0.7), (x,), eps=1e-6, atol=1e-5)


def test_fake_tensor_shape_and_compile_free_export():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(3, 5, 8, 8)
        y = torch.ops.seedlock.bi_activation(x, "elu", 1.0)
        assert y.shape == (3, 10, 8, 8)
    ep = torch.export.export(BiActivation("relu").eval(), (torch.randn(1, 2, 4, 4),))
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert torch.ops.seedlock.bi_activation.default in targets


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="base must be one of"):
        BiActivation("tanh")
    with pytest.raises(ValueError, match="unknown activation"):
        make_activation("swish")
    assert channel_factor("bi-elu") == 2 and channel_factor("relu") == 1


class TwoUses(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.act1 = BiActivation("relu")
        self.conv2 = nn.Conv2d(8, 4, 3, padding=1)
        self.act2 = BiActivation("elu", 0.5)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.head(self.act2(self.conv2(self.act1(self.conv1(x)))))


@pytest.fixture(scope="module")
def exported():
    torch.manual_seed(0)
    model = TwoUses().eval()
    dyn = ({0: torch.export.Dim("batch", min=1, max=64)},)
    proto = to_onnx(model, (torch.randn(1, 3, 8, 8),), ["image"], ["logits"], dyn)
    return model, proto


def test_onnx_has_one_node_per_use_with_attributes(exported):
    _, proto = exported
    nodes = [n for n in proto.graph.node if n.domain == bi_onnx.DOMAIN]
    assert [n.op_type for n in nodes] == ["BiActivation", "BiActivation"]
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in nodes]
    assert attrs == [{"base": b"relu", "alpha": 0.0}, {"base": b"elu", "alpha": 0.5}]
    assert count_ops(proto, "Elu") == 0, "the graph must not carry the decomposition"
    assert {(o.domain, o.version) for o in proto.opset_import} >= {("ai.seedlock", 1), ("", 18)}
    (func,) = [f for f in proto.functions if f.domain == "ai.seedlock"]
    assert func.name == "BiActivation" and list(func.attribute) == ["base", "alpha"]
    onnx.checker.check_model(proto, full_check=True)


def test_stock_onnxruntime_runs_it(exported):
    model, proto = exported
    session = ort.InferenceSession(serialize(proto), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = torch.randn(batch, 3, 8, 8, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-5


@pytest.mark.parametrize("base,alpha", [("relu", 1.0), ("elu", 1.0), ("elu", 2.5)])
def test_function_body_matches_reference(base, alpha):
    """The model-local function alone (no torch) computes the DESIGN.md definition."""
    node = onnx.helper.make_node("BiActivation", ["x"], ["y"], domain="ai.seedlock", base=base, alpha=bi_onnx.onnx_alpha(base, alpha))
    graph = onnx.helper.make_graph(
        [node], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [2, 3, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, [2, 6, 4])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], functions=[bi_onnx.function_proto()])
    assert bi_onnx.attach(model) == 1
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(3).normal(size=(2, 3, 4))
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, reference(x, base, alpha), rtol=1e-12, atol=1e-12)


def test_export_is_byte_identical(exported):
    model, proto = exported
    dyn = ({0: torch.export.Dim("batch", min=1, max=64)},)
    again = to_onnx(model, (torch.randn(1, 3, 8, 8),), ["image"], ["logits"], dyn)
    assert serialize(again) == serialize(proto)
