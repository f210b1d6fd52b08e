"""The fused bi-activation GPU kernel (OpenAI Triton), compiled ahead of time to PTX.

    BiActivation(x; alpha) = concat(f(x), -f(-x))  along axis 1
    f(x) = x if x > 0 else alpha * (exp(x) - 1)         (alpha 0 is relu)

One pass over the input: each thread element reads x once and writes both
halves, 3 elements of memory traffic per input element (the floor for this op;
the five-layer ONNX function moves several times that).

ABI. TensorRT's ahead-of-time plugin interface (``tensorrt.plugin.aot_impl``)
launches a kernel with its input pointers, then int32 "extra" scalars, then its
output pointers, so the kernel is ``(x_ptr, n_elements, chw, y_ptr)`` with
``n_elements = N*C*prod(spatial)`` and ``chw = C*prod(spatial)``; ``ALPHA`` and
``BLOCK`` are compile-time constants baked into the PTX, one kernel per
(dtype, alpha). Launch a 1-D grid of at least ``cdiv(n_elements, BLOCK)`` blocks of
``CompiledKernel.threads`` threads. Tensors are contiguous (N, C, *spatial) in
and (N, 2C, *spatial) out; fp16 is computed in fp32; n_elements must stay
below ``MAX_ELEMENTS`` (int32 indexing).

Why AOT: the plan then carries the compiled kernel itself, so the engine runs
under any TensorRT runtime (the seedlock server, trtexec) with no Python,
Triton or plugin registration at inference time. Compiling needs no GPU (the
target is given explicitly, and Triton bundles ptxas, which also validates the
PTX at build time).

Minimum versions: a Triton with ``ASTSource(constexprs=...)`` (3.3; tested
with 3.9), TensorRT >= 10.9 to consume the PTX (see ``tensorrt_plugin``). The PTX
is pinned to the lowest ISA its target allows (7.8 up to sm_89, 8.0 for
sm_90a), so the driver need not be as new as Triton's bundled ptxas (12.9).

For tests, ``interpret`` runs the same kernel source on the CPU through
Triton's interpreter (in a subprocess, since ``TRITON_INTERPRET=1`` must be
set before the kernel is decorated).
"""

import functools
import os
import re
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import triton
import triton.language as tl

BLOCK = 1024
# int32 offsets: the last block's lanes (< n_elements + BLOCK) must not overflow.
MAX_ELEMENTS = 2**31 - 1 - BLOCK
DTYPES = ("fp32", "fp16")
# Scalar/pointer parameters TensorRT passes: x_ptr, n_elements, chw, y_ptr.
ABI_PARAMS = 4


def _ptx_isa(capability: int) -> int | None:
    """The lowest PTX ISA that Triton's target for the arch accepts, so the PTX
    loads on older drivers than the bundled ptxas's: 7.8 (CUDA 11.8) up to
    sm_89, 8.0 (CUDA 12.0) for sm_90a. None (Triton's default) from sm_100."""
    if capability < 90:
        return 78
    return 80 if capability < 100 else None


def _alpha_bits(alpha: float) -> str:
    return struct.pack(">f", float(alpha)).hex()


def _kernel_name(spec) -> str:
    """A distinct PTX entry name per specialization (dtype, alpha, block), so two
    BiActivation layers of one engine never share a kernel symbol."""
    dtype = str(spec.signature["x_ptr"]).lstrip("*")
    alpha = float(spec.constants["ALPHA"])
    kind = "relu" if alpha == 0.0 else f"elu{_alpha_bits(alpha)}"
    return f"seedlock_bi_activation_{dtype}_{kind}_b{spec.constants['BLOCK']}"


@triton.jit(repr=_kernel_name)
def bi_activation_kernel(x_ptr, n_elements, chw, y_ptr, ALPHA: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_elements
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    # Element i = n*chw + r goes to n*2*chw + r (= i + n*chw) and chw further on;
    # int64 because output offsets reach 2*n_elements.
    n = offs // chw
    pos_at = offs.to(tl.int64) + (n * chw).to(tl.int64)
    neg_at = pos_at + chw
    if ALPHA == 0.0:
        # relu: max(x, 0) and min(x, 0), written so that NaN propagates.
        pos = tl.where(x <= 0.0, 0.0, x)
        neg = tl.where(x >= 0.0, 0.0, x)
    else:
        # Both halves need expm1 of -|x|: f(x) for x <= 0 and -f(-x) for x >= 0.
        t = -tl.abs(x)
        u = tl.exp(t)
        d = u - 1.0  # exact for u in [0.5, 1] (Sterbenz)
        # Kahan: (u - 1) * t / log(u) cancels the rounding of exp near 0, where
        # exp(t) - 1 alone loses all relative accuracy. log is libdevice's
        # (accurate), so the trick holds on the GPU too. Below u = 0.5, u - 1 is
        # already accurate; the guard also keeps log off u == 1 (0/0) and
        # u == 0 (log = -inf), where the other branches are exact.
        kahan = (u >= 0.5) & (u != 1.0)
        lg = tl.log(tl.where(kahan, u, 2.0))
        em1 = tl.where(u == 1.0, t, tl.where(kahan, d * (t / lg), d))
        # >= / <=: a zero passes through with its sign, as alpha * expm1(+-0) would.
        pos = tl.where(x >= 0.0, x, ALPHA * em1)
        neg = tl.where(x <= 0.0, x, -ALPHA * em1)
    out_ty = y_ptr.dtype.element_ty
    tl.store(y_ptr + pos_at, pos.to(out_ty), mask=mask)
    tl.store(y_ptr + neg_at, neg.to(out_ty), mask=mask)


@dataclass(frozen=True)
class CompiledKernel:
    """PTX for one (dtype, alpha, arch, block) and what a launch needs."""

    name: str
    ptx: str
    num_warps: int
    shared: int
    block: int

    @property
    def threads(self) -> int:
        return self.num_warps * 32


class KernelABIError(RuntimeError):
    """The compiled PTX does not fit the launch TensorRT will make."""


def _entry(ptx: str, name: str) -> tuple[list[str], str]:
    """The parameter declarations of entry ``name`` and the PTX text after them."""
    entries = re.findall(r"\.visible\s+\.entry\s+([A-Za-z_$][\w$]*)\s*\(", ptx)
    if entries != [name]:
        raise KernelABIError(f"expected one PTX entry {name!r}, found {entries}")
    m = re.search(r"\.entry\s+" + re.escape(name) + r"\s*\((.*?)\)", ptx, re.S)
    return [p.strip() for p in m.group(1).split(",") if p.strip()], ptx[m.end():]


def check_abi(ptx: str, name: str) -> None:
    """Raise KernelABIError unless entry ``name`` takes (u64, u32, u32, u64, ...)
    and nothing past the fourth parameter is ever referenced.

    Recent Triton appends global/profile scratch pointers to every kernel;
    TensorRT passes only our four arguments, so those trailing parameters must
    stay dead. A Triton that starts using them (or reorders the ABI) fails
    here, at engine build time, instead of reading garbage on the GPU."""
    params, body = _entry(ptx, name)
    want = [r"\.[bsu]64\b", r"\.[bsu]32\b", r"\.[bsu]32\b", r"\.[bsu]64\b"]
    ok = len(params) >= ABI_PARAMS and all(
        re.search(w, p) and p.endswith(f"_param_{i}") for i, (w, p) in enumerate(zip(want, params))
    )
    if not ok:
        raise KernelABIError(
            f"PTX entry {name} has parameters {params}; TensorRT launches it as (x_ptr: u64, n_elements: u32, "
            "chw: u32, y_ptr: u64): check the kernel signature against this Triton version"
        )
    used = {int(i) for i in re.findall(re.escape(name) + r"_param_(\d+)\b", body)}
    beyond = sorted(i for i in used if i >= ABI_PARAMS)
    if beyond:
        raise KernelABIError(
            f"PTX entry {name} uses parameter(s) {beyond}, beyond the {ABI_PARAMS} TensorRT passes (Triton's "
            f"scratch pointers: {params[ABI_PARAMS:]}); this Triton version gives the kernel scratch memory, "
            "which an AOT TensorRT plugin cannot provide: pin the Triton version the kernel was tested with"
        )


@functools.lru_cache(maxsize=None)
def compile_ptx(dtype: str, alpha: float, arch: tuple[int, int] = (8, 0), block: int = BLOCK) -> CompiledKernel:
    """Compile the kernel for ``dtype`` ("fp32" or "fp16"), ``alpha`` (0 for relu)
    and compute capability ``arch`` = (major, minor). Needs no GPU."""
    if dtype not in DTYPES:
        raise ValueError(f"bi-activation kernel dtype must be one of {DTYPES}, got {dtype!r}")
    if block <= 0 or block & (block - 1):
        raise ValueError(f"block must be a power of two, got {block}")
    major, minor = arch
    capability = major * 10 + minor
    if capability < 80:
        raise ValueError(f"the bi-activation kernel targets sm_80 or newer; got compute capability {major}.{minor}")
    try:
        src = triton.compiler.ASTSource(
            fn=bi_activation_kernel,
            signature={"x_ptr": f"*{dtype}", "n_elements": "i32", "chw": "i32", "y_ptr": f"*{dtype}"},
            constexprs={"ALPHA": float(alpha), "BLOCK": block},
        )
    except TypeError as exc:
        raise RuntimeError(
            f"Triton {triton.__version__} predates ASTSource(constexprs=...) ({exc}): pip install 'triton>=3.3'"
        ) from None
    # fp fusion off: no FMA contraction, results stay closer to the reference
    # (and an explicit value silences Triton 3.9's default-change warning).
    options = {"enable_fp_fusion": False}
    if _ptx_isa(capability) is not None:
        options["ptx_version"] = _ptx_isa(capability)
    compiled = triton.compile(src, target=triton.backends.compiler.GPUTarget("cuda", capability, 32), options=options)
    meta = compiled.metadata
    for scratch in ("global_scratch_size", "profile_scratch_size"):
        if getattr(meta, scratch, 0):
            raise KernelABIError(f"Triton gave the kernel {scratch}={getattr(meta, scratch)}; TensorRT cannot provide it")
    ptx = compiled.asm["ptx"]
    check_abi(ptx, meta.name)
    return CompiledKernel(name=meta.name, ptx=ptx, num_warps=meta.num_warps, shared=meta.shared, block=block)


def reference(x: np.ndarray, alpha: float) -> np.ndarray:
    """Float64 numpy bi-activation along axis 1, cast back to ``x.dtype``."""
    if x.ndim < 2:
        raise ValueError(f"bi-activation needs a channel axis (axis 1); got a {x.ndim}-d array")

    def f(v: np.ndarray) -> np.ndarray:
        return np.where(v > 0, v, alpha * np.expm1(np.where(v > 0, 0.0, v)))

    x64 = x.astype(np.float64)
    return np.concatenate([f(x64), -f(-x64)], axis=1).astype(x.dtype)


def launch(x, alpha: float, block: int = BLOCK):
    """Run the kernel with Triton's launcher on a contiguous torch tensor: a CUDA
    tensor on a GPU, a CPU tensor under ``TRITON_INTERPRET=1``."""
    import torch

    if x.dim() < 2:
        raise ValueError(f"bi-activation needs a channel axis (dim 1); got a {x.dim()}-d tensor")
    x = x.contiguous()
    if x.numel() > MAX_ELEMENTS:
        raise ValueError(f"the kernel indexes with int32: at most {MAX_ELEMENTS} elements, got {x.numel()}")
    shape = list(x.shape)
    shape[1] *= 2
    y = torch.empty(shape, dtype=x.dtype, device=x.device)
    numel = x.numel()
    if numel:
        grid = (triton.cdiv(numel, block),)
        bi_activation_kernel[grid](
            x, numel, numel // x.shape[0], y, ALPHA=float(alpha), BLOCK=block, enable_fp_fusion=False
        )
    return y


def interpret(cases: Sequence[tuple[np.ndarray, float]], block: int = BLOCK, timeout: float = 300) -> list[np.ndarray]:
    """Outputs of the kernel for each ``(x, alpha)``, run by Triton's CPU
    interpreter in one subprocess (needs torch)."""
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp, "in.npz"), Path(tmp, "out.npz")
        arrays = {f"x{i}": x for i, (x, _) in enumerate(cases)}
        arrays.update({f"a{i}": np.float64(a) for i, (_, a) in enumerate(cases)})
        np.savez(inp, **arrays)
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "seedlock.export.bi_activation_kernel", "--interpret", str(inp), str(out), str(block)],
            env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"interpreted bi-activation kernel failed (exit {proc.returncode}):\n{proc.stderr}")
        with np.load(out) as data:
            return [data[f"y{i}"] for i in range(len(cases))]


def _interpret_main(inp: str, out: str, block: int) -> None:
    import torch

    if os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("--interpret needs TRITON_INTERPRET=1 in the environment (set before Triton loads)")
    with np.load(inp) as data:
        count = sum(1 for k in data.files if k.startswith("x"))
        results = {
            f"y{i}": launch(torch.from_numpy(data[f"x{i}"]), float(data[f"a{i}"]), block).numpy()
            for i in range(count)
        }
    np.savez(out, **results)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--interpret":
        _interpret_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit("usage: python -m seedlock.export.bi_activation_kernel --interpret IN.npz OUT.npz BLOCK")
