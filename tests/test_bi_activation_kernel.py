"""The fused bi-activation Triton kernel: numerics (on the CPU through Triton's
interpreter) against a float64 reference and the PyTorch op, and the PTX that
TensorRT will launch (compiled for sm_80/sm_90 without a GPU)."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("triton", reason="the fused kernel needs OpenAI Triton (dev extra)")

from seedlock.export.bi_activation_kernel import (  # noqa: E402
    ABI_PARAMS,
    BLOCK,
    KernelABIError,
    check_abi,
    compile_ptx,
    interpret,
    reference,
)

ALPHAS = (0.0, 1.0, 0.5)  # relu, elu, elu(0.5)


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    tiny = -np.logspace(-6, -3, 600)  # exp(x) - 1 loses relative accuracy here
    tiny = np.concatenate([tiny, -tiny]).reshape(2, 3, 200)
    special = np.array([[np.nan, np.inf, -np.inf, 0.0, -0.0, -100.0, -90.0, -1e-30, 1e-30, 88.0, -17.0, 3e-8]])
    return {
        "odd": rng.standard_normal((3, 5, 7, 9)) * 3,  # N=3, C=5, odd spatial; 945 elements < BLOCK
        "blocks": rng.standard_normal((2, 7, 13, 17)) * 2,  # 3094: several blocks, not a multiple of BLOCK
        "rank2": rng.standard_normal((4, 300)),
        "tiny": tiny,
        "special": special,
    }


CASES = [(name, dtype, alpha) for name in _inputs() for dtype in (np.float32, np.float16) for alpha in ALPHAS]


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, type, float], tuple[np.ndarray, np.ndarray]]:
    """(input, kernel output) per case, from one interpreter subprocess."""
    pytest.importorskip("torch", reason="Triton's interpreter runs the kernel on torch CPU tensors")
    inputs = _inputs()
    xs = [inputs[name].astype(dtype) for name, dtype, _ in CASES]
    outs = interpret([(x, alpha) for x, (_, _, alpha) in zip(xs, CASES)])
    return {case: (x, y) for case, x, y in zip(CASES, xs, outs)}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{np.dtype(c[1]).name}-a{c[2]}")
def test_interpreted_kernel_matches_reference(results, case):
    x, y = results[case]
    alpha = case[2]
    assert y.dtype == x.dtype
    assert y.shape == (x.shape[0], 2 * x.shape[1], *x.shape[2:])
    want = reference(x, alpha)
    if x.dtype == np.float32:
        np.testing.assert_allclose(y, want, rtol=2e-6, atol=0)
    else:  # fp16 in, fp32 math, one rounding to fp16 out
        np.testing.assert_allclose(y.astype(np.float32), want.astype(np.float32), rtol=1e-3, atol=1e-4)
    if alpha:  # elu zeros keep their sign, as in alpha * expm1(+-0)
        zeros = want == 0
        assert np.array_equal(np.signbit(y[zeros]), np.signbit(want[zeros]))


def test_tiny_inputs_defeat_naive_expm1():
    """The accuracy check above is sharp enough to catch exp(x) - 1 in fp32."""
    x = -np.logspace(-6, -3, 600).astype(np.float32)
    naive = np.exp(x) - np.float32(1)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(naive, np.expm1(x.astype(np.float64)), rtol=1e-6, atol=0)


def test_interpreted_kernel_matches_torch_op(results):
    torch = pytest.importorskip("torch")
    import seedlock.train.bi_activation  # noqa: F401  (registers torch.ops.seedlock.bi_activation)

    for name, dtype, alpha in CASES:
        if dtype is not np.float32 or name == "special":
            continue
        x, y = results[(name, dtype, alpha)]
        base = "relu" if alpha == 0.0 else "elu"
        want = torch.ops.seedlock.bi_activation(torch.from_numpy(x), base, alpha).numpy()
        np.testing.assert_allclose(y, want, rtol=2e-6, atol=1e-7, err_msg=f"{name} {base} {alpha}")


def test_reference_definition():
    x = np.array([[-2.0, -1e-7, 0.0, 3.0]], dtype=np.float64)
    pos, neg = np.split(reference(x, 0.5), 2, axis=1)
    np.testing.assert_allclose(pos, [[0.5 * np.expm1(-2.0), 0.5 * np.expm1(-1e-7), 0.0, 3.0]], rtol=1e-15)
    np.testing.assert_allclose(neg, [[-2.0, -1e-7, 0.0, -0.5 * np.expm1(-3.0)]], rtol=1e-15)
    np.testing.assert_array_equal(reference(x, 0.0), [[0, 0, 0, 3, -2, -1e-7, 0, 0]])
    with pytest.raises(ValueError, match="channel axis"):
        reference(np.zeros(3), 1.0)


# -- PTX for TensorRT -------------------------------------------------------
@pytest.mark.parametrize("arch", [(8, 0), (9, 0)])
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_ptx_abi(arch, dtype):
    k = compile_ptx(dtype, 1.0, arch)
    ptx = k.ptx
    sm = f"sm_{arch[0]}{arch[1]}"
    assert re.search(rf"^\.target {sm}a?$", ptx, re.M), f"no .target {sm}"
    # the lowest ISA for the target, not the bundled ptxas's newest
    assert re.search(r"^\.version (7\.8|8\.0)$", ptx, re.M)
    assert re.findall(r"\.visible\s+\.entry\s+(\w+)", ptx) == [k.name]
    assert dtype in k.name and k.block == BLOCK
    entry = re.search(rf"\.entry\s+{k.name}\s*\((.*?)\)", ptx, re.S)
    params, body = entry.group(1).split(","), ptx[entry.end() :]
    types = [re.search(r"\.param\s+\.(\w+)", p).group(1) for p in params]
    # (x_ptr, n_elements, chw, y_ptr), then Triton's scratch pointers
    assert types[:ABI_PARAMS] == ["u64", "u32", "u32", "u64"]
    assert all(t == "u64" for t in types[ABI_PARAMS:])
    used = {int(i) for i in re.findall(rf"{k.name}_param_(\d+)\b", body)}
    assert used == set(range(ABI_PARAMS)), f"kernel references params {sorted(used)}"
    assert re.search(rf"\.reqntid {k.threads}\b", ptx)  # the block TensorRT launches
    assert k.threads == k.num_warps * 32 and k.shared == 0


def test_alpha_is_baked_into_the_ptx():
    half, one, relu = (compile_ptx("fp32", a) for a in (0.5, 1.0, 0.0))
    assert len({half.name, one.name, relu.name}) == 3  # distinct kernel symbols per layer kind
    assert half.ptx != one.ptx
    assert "0f3F000000" in half.ptx  # 0.5 as a PTX float literal
    assert "ex2" not in relu.ptx and "ex2" in one.ptx  # relu needs no exp


def test_check_abi_rejects_used_scratch_and_wrong_signature():
    k = compile_ptx("fp32", 1.0)
    scratch = f"{k.name}_param_{ABI_PARAMS}"
    bad = k.ptx.replace("ret;", f"ld.param.b64 \t%rd99, [{scratch}];\n\tret;", 1)
    assert bad != k.ptx
    with pytest.raises(KernelABIError, match="beyond the 4"):
        check_abi(bad, k.name)
    swapped = k.ptx.replace(f".param .u32 {k.name}_param_1", f".param .u64 {k.name}_param_1", 1)
    with pytest.raises(KernelABIError, match="x_ptr: u64"):
        check_abi(swapped, k.name)
    with pytest.raises(KernelABIError, match="one PTX entry"):
        check_abi(k.ptx, "other_kernel")


def test_compile_ptx_rejects_bad_requests():
    with pytest.raises(ValueError, match="fp32"):
        compile_ptx("bf16", 1.0)
    with pytest.raises(ValueError, match="sm_80"):
        compile_ptx("fp32", 1.0, (7, 5))
    with pytest.raises(ValueError, match="power of two"):
        compile_ptx("fp32", 1.0, (8, 0), 1000)
