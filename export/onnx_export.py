"""torch -> ONNX, made deterministic and self-contained.

Uses the ``torch.export``-based exporter with a translation for our custom op,
then strips what varies between runs or machines (source paths in node
metadata, doc strings, producer versions) so exporting the same checkpoint
twice gives byte-identical files, and checks the result with
``onnx.checker(full_check=True)``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Any

import onnx
import torch

from seedlock.export import bi_activation_onnx as bi_onnx
from seedlock.export.errors import ExportError
from seedlock.train import bi_activation as _bi  # noqa: F401  (registers torch.ops.seedlock)

PRODUCER = "seedlock"


def _clean(model: onnx.ModelProto) -> onnx.ModelProto:
    def strip_graph(graph: onnx.GraphProto) -> None:
        graph.doc_string = ""
        del graph.metadata_props[:]
        for node in graph.node:
            node.doc_string = ""
            del node.metadata_props[:]
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    strip_graph(attr.g)
        for value in list(graph.value_info) + list(graph.input) + list(graph.output):
            value.doc_string = ""
            del value.metadata_props[:]
        for init in graph.initializer:
            init.doc_string = ""
            del init.metadata_props[:]

    strip_graph(model.graph)
    del model.metadata_props[:]
    model.doc_string = ""
    model.producer_name = PRODUCER
    model.producer_version = ""
    return model


def to_onnx(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    input_names: list[str],
    output_names: list[str],
    dynamic_shapes: Any = None,
) -> onnx.ModelProto:
    """Export ``module`` (in eval mode) and return a checked, cleaned ModelProto."""
    module = module.eval()
    log = logging.getLogger("torch.onnx")
    previous = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                example_inputs,
                dynamo=True,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=dynamic_shapes,
                opset_version=bi_onnx.ONNX_OPSET,
                custom_translation_table={torch.ops.seedlock.bi_activation.default: bi_onnx.translate},
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; keep the first line
        raise ExportError(f"torch.onnx.export failed: {str(exc).splitlines()[0]}") from exc
    finally:
        log.setLevel(previous)
    model = program.model_proto
    bi_onnx.attach(model)
    _clean(model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported model fails onnx.checker: {exc}") from exc
    return model


def serialize(model: onnx.ModelProto) -> bytes:
    """Deterministic bytes for a ModelProto."""
    return model.SerializeToString(deterministic=True)


def count_ops(model: onnx.ModelProto, op_type: str, domain: str = "") -> int:
    return sum(1 for n in model.graph.node if n.op_type == op_type and n.domain == domain)
