"""Client library and CLI commands. Never imports torch.

    from seedlock.clients import SegmentationClient, CaptioningClient, CompositionClient, FingerprintsClient, InferenceClient
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SegmentationClient",
    "SegmentResult",
    "CaptioningClient",
    "CompositionClient",
    "FingerprintsClient",
    "InferenceClient",
    "RetryPolicy",
    "SeedlockError",
]

_LAZY = {
    "SegmentationClient": "seedlock.clients.segmentation",
    "SegmentResult": "seedlock.clients.segmentation",
    "CaptioningClient": "seedlock.clients.captioning",
    "CompositionClient": "seedlock.clients.composition",
    "FingerprintsClient": "seedlock.clients.fingerprints",
    "InferenceClient": "seedlock.clients.inference",
    "RetryPolicy": "seedlock.clients.base",
    "SeedlockError": "seedlock.clients.errors",
}


def __getattr__(name: str) -> Any:
    # Lazy, so `seedlock client --help` does not pay for grpc and cv2.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seedlock.clients' has no attribute {name!r}")
