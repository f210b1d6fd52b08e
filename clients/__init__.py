"""Client library and CLI commands. Never imports torch.

    from seedlock.clients import SegmentationClient, CaptioningClient, CompositionClient, FingerprintsClient, InferenceClient

The task clients are the ``client`` modules of the task table
(:data:`seedlock.core.tasks.TASKS`); they are imported on first use, so
``seedlock client --help`` does not pay for grpc and cv2.
"""

from __future__ import annotations

import importlib
from typing import Any

from seedlock.core import tasks

_SHARED = {
    "InferenceClient": "seedlock.clients.inference",
    "BaseClient": "seedlock.clients.base",
    "RetryPolicy": "seedlock.clients.base",
    "SeedlockError": "seedlock.clients.errors",
}


def __getattr__(name: str) -> Any:
    if name in _SHARED:
        return getattr(importlib.import_module(_SHARED[name]), name)
    if name[:1].isupper():
        for task in tasks.TASKS:
            module = task.module("client")
            value = getattr(module, name, None)
            if value is not None and getattr(value, "__module__", None) == module.__name__:
                return value
    raise AttributeError(f"module 'seedlock.clients' has no attribute {name!r}")
