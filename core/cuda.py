"""A tiny ctypes binding to the CUDA runtime (libcudart): device queries,
device buffers, streams and async copies.

Just enough to feed a TensorRT engine and to describe the GPU a plan was
built on, without a new dependency (no cuda-python, no pycuda; Polygraphy
does the same). Export imports it to record the build host, the server to run
engines. Every call's return code is checked; failures raise
:class:`CudaError` with the runtime's own message and what to do.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
from pathlib import Path

import numpy as np

# cudaDeviceAttr values (driver_types.h; stable across CUDA 11-13).
_ATTR_MEMORY_CLOCK_KHZ = 36
_ATTR_BUS_WIDTH_BITS = 37
_ATTR_CC_MAJOR = 75
_ATTR_CC_MINOR = 76
# cudaMemcpyKind
_HOST_TO_DEVICE = 1
_DEVICE_TO_HOST = 2
# sizeof(cudaDeviceProp) is ~1 KiB and grows between releases; a generous
# buffer keeps an older/newer runtime from writing past our allocation.
_PROP_BYTES = 8192
_NAME_BYTES = 256  # `char name[256]` opens cudaDeviceProp in every CUDA version

_SONAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12")


class CudaError(RuntimeError):
    """A CUDA runtime call failed, or no CUDA runtime / GPU is usable."""


def _wheel_dirs() -> list[Path]:
    """Library folders of NVIDIA's pip wheels: ``nvidia-cuda-runtime-cu12``
    installs ``nvidia/cuda_runtime/lib``, the CUDA 13 wheels ``nvidia/cu13/lib``."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    roots = [Path(p) for p in spec.submodule_search_locations]
    return [root / sub for root in roots for sub in ("cuda_runtime/lib", "cu13/lib")]


def _candidates() -> list[str]:
    found: list[str] = []
    for folder in _wheel_dirs():
        found += sorted(str(p) for p in folder.glob("libcudart.so*"))
    found += list(_SONAMES)
    cuda_home = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "lib64"
    found += sorted(str(p) for p in cuda_home.glob("libcudart.so*"))
    return found


@functools.lru_cache(maxsize=1)
def _load() -> tuple[ctypes.CDLL | None, str]:
    """The first libcudart that loads, and its path (or None and why not)."""
    tried = []
    for name in _candidates():
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            tried.append(f"{name}: {exc}")
            continue
        _declare(lib)
        return lib, name
    return None, "; ".join(tried[-3:])


def _declare(lib: ctypes.CDLL) -> None:
    """Argument types, so pointers and size_t are passed at full width."""
    c_int_p = ctypes.POINTER(ctypes.c_int)
    sigs = {
        "cudaGetErrorString": ([ctypes.c_int], ctypes.c_char_p),
        "cudaGetErrorName": ([ctypes.c_int], ctypes.c_char_p),
        "cudaGetDeviceCount": ([c_int_p], ctypes.c_int),
        "cudaRuntimeGetVersion": ([c_int_p], ctypes.c_int),
        "cudaDeviceGetAttribute": ([c_int_p, ctypes.c_int, ctypes.c_int], ctypes.c_int),
        "cudaMalloc": ([ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t], ctypes.c_int),
        "cudaFree": ([ctypes.c_void_p], ctypes.c_int),
        "cudaStreamCreate": ([ctypes.POINTER(ctypes.c_void_p)], ctypes.c_int),
        "cudaStreamSynchronize": ([ctypes.c_void_p], ctypes.c_int),
        "cudaStreamDestroy": ([ctypes.c_void_p], ctypes.c_int),
        "cudaMemcpyAsync": ([ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p], ctypes.c_int),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    for name in ("cudaGetDeviceProperties_v2", "cudaGetDeviceProperties"):
        if hasattr(lib, name):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_int], ctypes.c_int


def _lib() -> ctypes.CDLL:
    lib, why = _load()
    if lib is None:
        raise CudaError(
            f"no CUDA runtime library found (libcudart; tried {why}); install the CUDA toolkit or "
            "`pip install nvidia-cuda-runtime-cu12`, or serve the ONNX graphs (--backend onnxruntime)"
        )
    return lib


def library_path() -> str | None:
    """The libcudart in use, or None when none loads."""
    lib, name = _load()
    return name if lib is not None else None


# What to do about the errors a deployment meets (cudaError_t values).
_HINTS = {
    2: "free GPU memory (other processes, smaller --max-inflight) or use a smaller batch",
    34: "the driver library is a stub (no NVIDIA driver in this container); run with the GPU exposed (docker --gpus)",
    35: "the NVIDIA driver is older than this CUDA runtime; update the driver or use a CUDA runtime it supports "
    "(nvidia-smi shows the newest CUDA it supports)",
    100: "no GPU is visible; check nvidia-smi, CUDA_VISIBLE_DEVICES and the container's --gpus flag",
    101: "the device number is out of range; check CUDA_VISIBLE_DEVICES",
}


def _error_text(lib: ctypes.CDLL, code: int) -> str:
    name = (lib.cudaGetErrorName(code) or b"cudaError").decode()
    text = (lib.cudaGetErrorString(code) or b"unknown error").decode()
    return f"{name} ({code}): {text}"


def _check(code: int, call: str) -> None:
    if code != 0:
        hint = _HINTS.get(code, "serve the ONNX graphs instead (--backend onnxruntime) if the GPU cannot be fixed")
        raise CudaError(f"{call} failed: {_error_text(_lib(), code)}; {hint}")


def available() -> str | None:
    """None when a CUDA device is usable, else the reason it is not."""
    lib, why = _load()
    if lib is None:
        return f"no CUDA runtime library found (libcudart; tried {why})"
    count = ctypes.c_int(0)
    code = lib.cudaGetDeviceCount(ctypes.byref(count))
    if code != 0:
        return f"CUDA runtime found but no GPU: cudaGetDeviceCount returned {_error_text(lib, code)}"
    if count.value < 1:
        return "CUDA runtime found but no GPU: cudaGetDeviceCount reports 0 devices"
    return None


def device_count() -> int:
    count = ctypes.c_int(0)
    _check(_lib().cudaGetDeviceCount(ctypes.byref(count)), "cudaGetDeviceCount")
    return count.value


def runtime_version() -> str:
    """The CUDA runtime's version as "major.minor" (12080 -> "12.8")."""
    v = ctypes.c_int(0)
    _check(_lib().cudaRuntimeGetVersion(ctypes.byref(v)), "cudaRuntimeGetVersion")
    return f"{v.value // 1000}.{(v.value % 1000) // 10}"


def _attribute(attr: int, device: int) -> int:
    value = ctypes.c_int(0)
    _check(_lib().cudaDeviceGetAttribute(ctypes.byref(value), attr, device), f"cudaDeviceGetAttribute({attr}, device {device})")
    return value.value


def device_name(device: int = 0) -> str:
    lib = _lib()
    # CUDA 12 exports both (the header maps the plain name to _v2); CUDA 13 only the plain one.
    fn = getattr(lib, "cudaGetDeviceProperties_v2", None) or lib.cudaGetDeviceProperties
    buf = ctypes.create_string_buffer(_PROP_BYTES)
    _check(fn(buf, device), f"cudaGetDeviceProperties(device {device})")
    return buf.raw[:_NAME_BYTES].split(b"\0", 1)[0].decode(errors="replace")


def compute_capability(device: int = 0) -> str:
    return f"{_attribute(_ATTR_CC_MAJOR, device)}.{_attribute(_ATTR_CC_MINOR, device)}"


def peak_bandwidth_gbs(device: int = 0) -> float | None:
    """Theoretical memory bandwidth in GB/s (DDR: two transfers per clock), or
    None when the runtime does not report the memory clock (CUDA 13 may not)."""
    try:
        clock_khz = _attribute(_ATTR_MEMORY_CLOCK_KHZ, device)
        bus_bits = _attribute(_ATTR_BUS_WIDTH_BITS, device)
    except CudaError:
        return None
    if clock_khz <= 0 or bus_bits <= 0:
        return None
    return 2 * clock_khz * (bus_bits / 8) / 1e6


def host_environment(tensorrt_version: str, device: int = 0) -> dict[str, str]:
    """This host as :func:`seedlock.core.engines.mismatch` compares it."""
    return {
        "tensorrt": tensorrt_version,
        "cuda": runtime_version(),
        "gpu": device_name(device),
        "compute_capability": compute_capability(device),
    }


class DeviceBuffer:
    """One device allocation that only grows: ``ensure(n)`` reallocates when
    ``n`` exceeds the current size, so steady-state requests allocate nothing."""

    def __init__(self, nbytes: int = 0) -> None:
        self.ptr = 0
        self.nbytes = 0
        if nbytes:
            self.ensure(nbytes)

    def ensure(self, nbytes: int) -> int:
        """A device pointer to at least ``nbytes`` (>= 1, so TensorRT never sees null)."""
        nbytes = max(1, int(nbytes))
        if nbytes > self.nbytes:
            self.free()
            ptr = ctypes.c_void_p()
            _check(_lib().cudaMalloc(ctypes.byref(ptr), nbytes), f"cudaMalloc({nbytes} bytes)")
            self.ptr, self.nbytes = ptr.value or 0, nbytes
        return self.ptr

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr, self.nbytes = self.ptr, 0, 0
            _check(_lib().cudaFree(ptr), "cudaFree")

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have unloaded the runtime
            pass


class Stream:
    """A CUDA stream; ``handle`` is what TensorRT's ``execute_async_v3`` takes."""

    def __init__(self) -> None:
        handle = ctypes.c_void_p()
        _check(_lib().cudaStreamCreate(ctypes.byref(handle)), "cudaStreamCreate")
        self.handle: int = handle.value or 0

    def synchronize(self) -> None:
        _check(_lib().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.handle:
            handle, self.handle = self.handle, 0
            _check(_lib().cudaStreamDestroy(handle), "cudaStreamDestroy")

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - see DeviceBuffer.__del__
            pass


def _host_pointer(array: np.ndarray, writable: bool) -> int:
    if not array.flags.c_contiguous:
        raise ValueError("host array must be C-contiguous (use np.ascontiguousarray)")
    if writable and not array.flags.writeable:
        raise ValueError("destination host array is read-only")
    return array.ctypes.data


def memcpy_htod_async(dst_ptr: int, array: np.ndarray, stream: Stream) -> None:
    """Queue a copy of ``array`` to device memory. ``array`` must stay alive
    until the stream is synchronized."""
    src = _host_pointer(array, writable=False)
    _check(_lib().cudaMemcpyAsync(dst_ptr, src, array.nbytes, _HOST_TO_DEVICE, stream.handle), "cudaMemcpyAsync(host to device)")


def memcpy_dtoh_async(array: np.ndarray, src_ptr: int, stream: Stream) -> None:
    """Queue a copy of ``array.nbytes`` from device memory into ``array``;
    valid after the stream is synchronized."""
    dst = _host_pointer(array, writable=True)
    _check(_lib().cudaMemcpyAsync(dst, src_ptr, array.nbytes, _DEVICE_TO_HOST, stream.handle), "cudaMemcpyAsync(device to host)")
