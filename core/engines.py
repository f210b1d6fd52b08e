"""TensorRT engine records: what a ``*.plan`` file in a model version was
built with, and whether this host may run it.

A serialized TensorRT engine only runs under the TensorRT release that built
it, on the GPU model it was tuned for (same compute capability), with the same
CUDA major version. ``seedlock export trt`` writes one record per engine into
``manifest.engines[role]``; the server compares it with its own host before
it deserializes anything, and serves the ONNX graph instead when they differ.
numpy-free and torch-free: both export and serve read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The fields of a host description, in the order mismatches are reported.
HOST_KEYS = ("tensorrt", "cuda", "gpu", "compute_capability")


@dataclass(frozen=True)
class EngineRecord:
    """One engine file of a model version, as stored in the manifest."""

    file: str
    precision: str  # "fp32" or "fp16"
    tensorrt: str  # TensorRT version that built it, e.g. "10.9.0.34"
    cuda: str  # CUDA runtime version, e.g. "12.8"
    gpu: str  # device name, e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # e.g. "9.0"
    # input name -> {"min": shape, "opt": shape, "max": shape}
    profile: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)  # plugin ids used, e.g. "seedlock::BiActivation"
    workspace_mib: int = 0

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16"):
            raise ValueError(f"engine {self.file!r}: precision {self.precision!r} is not fp32 or fp16")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EngineRecord":
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"malformed engine record: {exc}") from None

    def host(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in HOST_KEYS}


def _cuda_major(version: str) -> str:
    return version.split(".")[0]


def mismatch(record: EngineRecord, host: dict[str, str]) -> str | None:
    """Why ``record``'s engine cannot run on ``host`` (a dict with
    :data:`HOST_KEYS`), or None when it can.

    TensorRT must match exactly (engines are not portable across releases
    unless built version-compatible, which seedlock does not do), and so must
    the GPU model and its compute capability; CUDA must match in its major
    version.
    """
    diffs = []
    for key in HOST_KEYS:
        built, here = str(getattr(record, key)), str(host.get(key, "?"))
        same = _cuda_major(built) == _cuda_major(here) if key == "cuda" else built == here
        if not same:
            diffs.append(f"{key} {built} (engine) vs {here} (this host)")
    if not diffs:
        return None
    return f"engine {record.file} was built for another host: " + "; ".join(diffs)
