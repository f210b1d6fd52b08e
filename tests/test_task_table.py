"""The task table is the one list of tasks: every row's modules exist and
provide what their layer expects, and every dispatcher offers every task."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from seedlock.core import tasks
from seedlock.core.manifest import GraphSpec, Manifest, ManifestError, TensorSpec
from seedlock.core.segmentation import SegmentationSpec

# What core/tasks.py documents each layer's module provides.
CONTRACT = {
    "train": ("register_train", "build_model"),
    "export": ("OPTIONS", "add_arguments", "export", "torch_graphs"),
    "serve": ("SERVICE_NAME", "add_to_server"),
    "cli": ("register_client",),
    "demo": ("TITLE", "train_and_export", "call"),
    "bench": ("register_bench",),
}


@pytest.mark.parametrize("task", tasks.TASKS, ids=lambda t: t.name)
def test_every_module_of_a_row_provides_its_layer_contract(task):
    for layer, names in CONTRACT.items():
        module = task.module(layer)
        missing = [n for n in names if not hasattr(module, n)]
        assert not missing, f"{task.name}: {module.__name__} lacks {missing}"
    spec = task.spec_class()
    assert spec.TASK == task.name
    assert all(callable(getattr(spec, n, None)) for n in ("from_manifest", "to_manifest", "check_reference"))
    client = task.module("client")
    assert any(isinstance(v, type) and v.__module__ == client.__name__ and n.endswith("Client") for n, v in vars(client).items())


def test_rows_are_unique():
    for field in ("name", "command", "stage", "model_name"):
        values = [getattr(t, field) for t in tasks.TASKS]
        assert len(values) == len(set(values)), field


def test_lookups_name_the_known_tasks():
    assert tasks.get("segmentation").command == "segment"
    with pytest.raises(KeyError, match="this seedlock knows segmentation, captioning"):
        tasks.get("translation")
    with pytest.raises(ValueError, match="unknown layer"):
        tasks.TASKS[0].module("frontend")


def _subcommands(parser: argparse.ArgumentParser, *path: str) -> set[str]:
    for word in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


@pytest.mark.parametrize("command", ["train", "export", "client", "bench", "demo"])
def test_every_dispatcher_offers_every_task(command):
    from seedlock.cli import build_parser
    from seedlock.demo import STAGES

    parser = build_parser(command)
    if command == "train":
        assert {t.command for t in tasks.TASKS} <= _subcommands(parser, "train")
    elif command == "export":
        assert {t.command for t in tasks.TASKS} | {"onnx", "verify", "trt"} <= _subcommands(parser, "export")
    elif command == "client":
        assert len(_subcommands(parser, "client")) >= len(tasks.TASKS) + 2  # + health, models
    elif command == "bench":
        assert len(_subcommands(parser, "bench")) >= len(tasks.TASKS)
    else:
        assert set(STAGES) == {t.stage for t in tasks.TASKS}


def test_the_server_offers_one_service_per_task():
    from seedlock.serve.server import service_names

    names = service_names()
    for task in tasks.TASKS:
        assert task.module("serve").SERVICE_NAME in names


# -- the segmentation spec (the other tasks' specs are tested with their pipelines)


def _segmentation_manifest(spec: SegmentationSpec, classes: int | None = None) -> Manifest:
    return Manifest(
        name="seg", version=1, task=spec.TASK,
        graphs={"model": GraphSpec("model.onnx", [TensorSpec("image", "float32", [-1, 3, -1, -1])],
                                   [TensorSpec("logits", "float32", [-1, classes or spec.num_classes, -1, -1])])},
        **spec.to_manifest(),
    )  # fmt: skip


def test_segmentation_spec_round_trips_through_the_manifest():
    spec = SegmentationSpec(64, (0.5, 0.4, 0.3), (0.2, 0.2, 0.25), ("background", "cat", "dog"), divisor=8)
    m = _segmentation_manifest(spec)
    assert SegmentationSpec.from_manifest(m) == spec
    again = Manifest.from_dict(__import__("json").loads(m.to_json()))
    assert SegmentationSpec.from_manifest(again).to_manifest() == spec.to_manifest()


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda m: m.preprocess.update(size=60), "not a multiple of the model's divisor 8"),
        (lambda m: m.preprocess.pop("mean"), "preprocess needs size, mean and std"),
        (lambda m: m.preprocess.update(std=[0.2, 0.0, 0.2]), "bad preprocess"),
        (lambda m: m.preprocess.update(resize="stretch"), "letterbox only"),
        (lambda m: m.labels.clear(), "needs 1 to 256 labels"),
        (lambda m: m.graphs.clear(), "needs a 'model' graph"),
    ],
)
def test_segmentation_spec_refuses_a_bad_manifest_saying_why(change, message):
    m = _segmentation_manifest(SegmentationSpec(64, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2), ("a", "b"), divisor=8))
    change(m)
    with pytest.raises(ManifestError, match=message) as info:
        SegmentationSpec.from_manifest(m)
    assert str(info.value).startswith("segmentation model 'seg' v1:")


def test_segmentation_spec_labels_must_match_the_logits():
    spec = SegmentationSpec(32, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2), ("a", "b"))
    with pytest.raises(ManifestError, match="logits have 5 classes but there are 2 labels"):
        SegmentationSpec.from_manifest(_segmentation_manifest(spec, classes=5))


def test_segmentation_pre_and_post_processing_undo_the_letterbox():
    import numpy as np

    spec = SegmentationSpec(16, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), ("bg", "fg"))
    image = np.zeros((10, 30, 3), np.uint8)
    image[:, 15:] = 255
    x, boxes = spec.preprocess(image)
    assert x.shape == (1, 3, 16, 16) and x.dtype == np.float32
    logits = np.stack([1.0 - x[:, 0], x[:, 0]], axis=1)  # class 1 where the image is bright
    (mask,) = spec.postprocess(logits, boxes)
    assert mask.shape == (10, 30) and mask[:, :14].max() == 0 and mask[:, 17:].min() == 1
    assert dataclasses.replace(spec, size=32).preprocess([image, image])[0].shape == (2, 3, 32, 32)
