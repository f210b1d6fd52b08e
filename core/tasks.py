"""The task table: every pipeline seedlock knows, and the module that
implements it in each layer. Nothing else lists tasks: the CLI dispatchers,
the server's services, the client CLI, the demo, the benches and the tests
loop over :data:`TASKS`.

Modules are named, not imported, so reading the table costs nothing and pulls
no layer in (``seedlock serve`` never imports a training module). What each
layer's module provides:

==========  ====================================================================
``spec``    ``core``: a dataclass with ``from_manifest(manifest)`` (validates,
            raises ``ManifestError``) and ``to_manifest()`` (the manifest's
            ``preprocess``, ``postprocess`` and ``labels``), plus the task's
            numpy pre/post-processing.
``train``   ``register_train(train_subparsers)`` and ``build_model(model_config,
            labels) -> torch.nn.Module`` (rebuilds a checkpoint's model).
``export``  ``OPTIONS`` (extra keyword names), ``add_arguments(parser)`` and
            ``export(checkpoint, repository, *, name, version, overwrite, log,
            **options) -> ExportResult``; ``torch_graphs(checkpoint)`` for
            ``export verify --checkpoint``.
``serve``   ``SERVICE_NAME`` and ``add_to_server(registry, server)``.
``client``  the client library (``__all__`` names its public classes).
``cli``     ``register_client(client_subparsers, common_parser)``.
``demo``    ``TITLE``, ``train_and_export(out, repository, steps, log)`` and
            ``call(server, out, run_client, log)``.
``bench``   ``register_bench(bench_subparsers)``.
==========  ====================================================================

Adding a task: one module per layer, and one row here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

LAYERS = ("spec", "train", "export", "serve", "client", "cli", "demo", "bench")


@dataclass(frozen=True)
class Task:
    name: str  # the manifest's and checkpoint's ``task``
    command: str  # the word after ``seedlock train`` / ``seedlock export``
    stage: str  # the demo stage (``seedlock demo --only``) and its run folder
    model_name: str  # the default model name in a repository
    title: str
    spec: str  # "module:Class"
    train: str
    export: str
    serve: str
    client: str
    cli: str
    demo: str
    bench: str

    def module(self, layer: str) -> ModuleType:
        """Import this task's module of ``layer`` (one of :data:`LAYERS`)."""
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; layers: {', '.join(LAYERS)}")
        return importlib.import_module(getattr(self, layer).split(":")[0])

    def spec_class(self) -> Any:
        module, _, name = self.spec.partition(":")
        return getattr(importlib.import_module(module), name)


TASKS: tuple[Task, ...] = (
    Task(
        name="segmentation", command="segment", stage="segment", model_name="segmenter",
        title="U-Net-BN segmenter (thesis 4.4)",
        spec="seedlock.core.segmentation:SegmentationSpec",
        train="seedlock.train.segment_cli", export="seedlock.export.segment_cli",
        serve="seedlock.serve.segmentation", client="seedlock.clients.segmentation",
        cli="seedlock.clients.segmentation_cli", demo="seedlock.demo_segment", bench="seedlock.bench_segment",
    ),
    Task(
        name="captioning", command="caption", stage="caption", model_name="captioner",
        title="image-caption generator (thesis 4.2)",
        spec="seedlock.core.captioning:CaptioningSpec",
        train="seedlock.train.caption_cli", export="seedlock.export.caption_cli",
        serve="seedlock.serve.captioning", client="seedlock.clients.captioning",
        cli="seedlock.clients.captioning_cli", demo="seedlock.demo_caption", bench="seedlock.bench_caption",
    ),
    Task(
        name="composition", command="compose", stage="compose", model_name="composer",
        title="music composer (thesis 3.7)",
        spec="seedlock.core.composition:CompositionSpec",
        train="seedlock.train.compose_cli", export="seedlock.export.compose_cli",
        serve="seedlock.serve.composition", client="seedlock.clients.composition",
        cli="seedlock.clients.composition_cli", demo="seedlock.demo_compose", bench="seedlock.bench_compose",
    ),
    Task(
        name="fingerprint-generation", command="fingerprint-gan", stage="fingerprint", model_name="fingerprint-gan",
        title="fake-fingerprint DCGAN and similarity checker (thesis 3.6)",
        spec="seedlock.core.fingerprints:FingerprintSpec",
        train="seedlock.train.fingerprint_cli", export="seedlock.export.fingerprint_cli",
        serve="seedlock.serve.fingerprints", client="seedlock.clients.fingerprints",
        cli="seedlock.clients.fingerprints_cli", demo="seedlock.demo_fingerprint", bench="seedlock.bench_fingerprint",
    ),
)  # fmt: skip


def names() -> list[str]:
    return [t.name for t in TASKS]


def get(name: str) -> Task:
    """The task whose manifest/checkpoint name is ``name``; ``KeyError`` naming the known ones."""
    for task in TASKS:
        if task.name == name:
            return task
    raise KeyError(f"unknown task {name!r}; this seedlock knows {', '.join(names())}")


def find(name: str) -> Task | None:
    return next((t for t in TASKS if t.name == name), None)


def by_command(command: str) -> Task:
    for task in TASKS:
        if task.command == command:
            return task
    raise KeyError(f"unknown task command {command!r}; choose from {', '.join(t.command for t in TASKS)}")


def commands() -> str:
    """``segment, caption, …`` for help texts."""
    return ", ".join(t.command for t in TASKS)
