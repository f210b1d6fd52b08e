"""The gRPC inference server. Never imports torch.

    from seedlock.serve import start_server
    with start_server("repository", port=0) as server:
        ...  # server.address

Imports are lazy so ``seedlock serve --help`` does not load onnxruntime.
"""

from __future__ import annotations

from typing import Any

__all__ = ["start_server", "RunningServer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from seedlock.serve import server

        return getattr(server, name)
    raise AttributeError(f"module 'seedlock.serve' has no attribute {name!r}")
