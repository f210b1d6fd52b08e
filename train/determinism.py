"""Seed-locked training runs: deterministic kernels and a fixed thread count.

The DESIGN contract is that the same config and seed on the same machine give
bit-identical weights. Every training loop runs inside :func:`deterministic`,
which restores the caller's settings afterwards (the demo runs several
pipelines in one process).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def deterministic(threads: int | None = None, device: torch.device | str = "cpu") -> Iterator[None]:
    """Deterministic algorithms on, cuDNN benchmarking off, ``threads`` intra-op
    threads (the thread count changes float summation order on CPU)."""
    if torch.device(device).type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
    prev = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    prev_threads = torch.get_num_threads()
    prev_cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = prev_cudnn
        torch.set_num_threads(prev_threads)
