"""The task services (``seedlock.v1``) the server offers, one module each.

Every module named in :data:`TASK_MODULES` provides

* ``TASK``: the manifest ``task`` it serves,
* ``SERVICE_NAME``: the full gRPC service name (for reflection),
* ``validate(manifest)``: raise ``ManifestError`` when a manifest of that task
  is unusable, so a bad model is refused at start-up, not on the first request,
* ``add_to_server(registry, server)``: register its servicer.

Adding a task service is one line here. Tasks without a service are served
over KServe v2 only.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from seedlock.core.manifest import Manifest

TASK_MODULES: tuple[str, ...] = (
    "seedlock.serve.segmentation",
    "seedlock.serve.composition",
    "seedlock.serve.captioning",
    "seedlock.serve.fingerprints",
)


def task_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in TASK_MODULES]


def validate_task(manifest: Manifest) -> None:
    """Raise ``ManifestError`` when the manifest does not fit its task service."""
    for module in task_modules():
        if module.TASK == manifest.task:
            module.validate(manifest)
