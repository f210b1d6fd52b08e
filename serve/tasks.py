"""The task services (``seedlock.v1``) the server offers: one per row of the
task table (:data:`seedlock.core.tasks.TASKS`), whose ``serve`` module
provides ``SERVICE_NAME`` and ``add_to_server(registry, server)``.

A model of a task the table knows is checked against the task's spec at
load (``Spec.from_manifest``), so a bad model is refused at start-up, not on
the first request. Models of other tasks are served over KServe v2 only.
"""

from __future__ import annotations

from types import ModuleType

from seedlock.core import tasks
from seedlock.core.manifest import Manifest


def task_modules() -> list[ModuleType]:
    return [task.module("serve") for task in tasks.TASKS]


def validate_task(manifest: Manifest) -> None:
    """Raise ``ManifestError`` when the manifest does not fit its task's spec."""
    task = tasks.find(manifest.task)
    if task is not None:
        task.spec_class().from_manifest(manifest)
