"""Plain Triton ONNX models: a model folder with ``config.pbtxt`` and
``<version>/model.onnx`` but no ``manifest.json``.

Served over KServe v2 only (no task service), with the tensors of the graph
as the config narrows them. Nothing pins their bytes, so their digests are
unverified: the runtime's manifest is made up at load from the config and the
graph, its ``files`` the sha256 of the graph as loaded, and the server says so
(a log warning and ``ListModels``' reason).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from seedlock.core import files, model_config
from seedlock.core.manifest import MANIFEST_NAME, GraphSpec, Manifest, ManifestError, TensorSpec, record_files
from seedlock.core.sessions import DEFAULT_MODEL_THREADS, MAX_MODEL_THREADS, SessionConfig, create_session
from seedlock.protos.inference import model_config_pb2 as mc
from seedlock.serve.runtime import ModelRuntime, check_graph

PLAIN_KEY = "plain_triton"  # in the made-up manifest's ``config``
UNVERIFIED = "digests unverified: a plain Triton model (no manifest.json); its digest is of the files as loaded"
PLATFORMS = ("", "onnxruntime_onnx")
BACKENDS = ("", "onnxruntime")
DEFAULT_FILE = "model.onnx"
# ONNX Runtime's tensor types -> the manifest's dtype names.
_ORT_TYPES = {
    "tensor(bool)": "bool", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16", "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64", "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(float16)": "float16", "tensor(float)": "float32", "tensor(double)": "float64",
}  # fmt: skip
_TRITON_TYPES = {mc.DataType.Value(f"TYPE_{t}"): d for t, d in (
    ("BOOL", "bool"), ("UINT8", "uint8"), ("UINT16", "uint16"), ("UINT32", "uint32"), ("UINT64", "uint64"),
    ("INT8", "int8"), ("INT16", "int16"), ("INT32", "int32"), ("INT64", "int64"), ("FP16", "float16"),
    ("FP32", "float32"), ("FP64", "float64"))}  # fmt: skip


def is_plain(folder: Path) -> bool:
    """The version folder has no manifest at all (not even a broken link or a
    FIFO in its place). A folder that cannot be searched is not plain: the
    manifest's reader says why it cannot be read."""
    try:
        os.lstat(folder / MANIFEST_NAME)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def is_plain_manifest(manifest: Manifest) -> bool:
    return bool(manifest.config.get(PLAIN_KEY))


def _threads(config: mc.ModelConfig) -> int:
    """Triton's ONNX Runtime backend parameter, where it is a usable count; else seedlock's default."""
    value = config.parameters.get(model_config.THREADS_PARAMETER)
    text = value.string_value.strip() if value is not None else ""
    return int(text) if text.isdigit() and 1 <= int(text) <= MAX_MODEL_THREADS else DEFAULT_MODEL_THREADS


def _graph_tensor(arg: Any, role: str) -> TensorSpec:
    """An ONNX Runtime ``NodeArg`` as a tensor spec; symbolic or unknown axes are -1."""
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        raise ManifestError(f"graph {role} {arg.name!r} has type {arg.type}, which this server does not serve")
    shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or [])]
    return TensorSpec(arg.name, dtype, shape)


def _narrowed(graph: TensorSpec, entry: mc.ModelInput | mc.ModelOutput, batched: bool, where: str) -> TensorSpec:
    """The graph's tensor as the config states it: its dtype must agree, and
    a fixed size in the config fixes a free axis of the graph."""
    dtype = _TRITON_TYPES.get(entry.data_type)
    if dtype != graph.dtype:
        raise ManifestError(f"{where}: {entry.name!r} has data_type {mc.DataType.Name(entry.data_type)}, "
                            f"the graph's is {graph.dtype}")  # fmt: skip
    dims = ([-1] if batched else []) + [int(d) for d in entry.dims]
    if len(dims) != len(graph.shape) or any(-1 not in (a, b) and a != b for a, b in zip(dims, graph.shape)):
        shown = f"dims {list(entry.dims)}" + (" after the batch axis (max_batch_size > 0)" if batched else "")
        raise ManifestError(f"{where}: {entry.name!r} has {shown}; the graph's shape is {graph.shape}")
    return TensorSpec(graph.name, graph.dtype, [b if a == -1 else a for a, b in zip(dims, graph.shape)])


def load_plain_runtime(repository: Path, name: str, number: int, session_config: SessionConfig) -> ModelRuntime:
    """Load version ``number`` of the plain Triton model ``name``; :class:`ManifestError` with why it cannot serve."""
    folder = repository / name / str(number)
    where = f"{name}/{model_config.CONFIG_NAME}"
    config = model_config.read(repository / name)
    if config is None:
        raise ManifestError(f"no manifest at {folder / MANIFEST_NAME} and no {where}: a seedlock model needs its "
                            "manifest, a plain Triton model its config.pbtxt")  # fmt: skip
    task = config.parameters.get(model_config.TASK_PARAMETER)
    if task is not None:
        raise ManifestError(f"{folder / MANIFEST_NAME} is missing, and {where} says seedlock exported this "
                            f"{task.string_value!r} model (half-written model?); re-export it")  # fmt: skip
    if config.platform not in PLATFORMS or config.backend not in BACKENDS:
        raise ManifestError(f"{where}: platform {config.platform!r} backend {config.backend!r}; this server runs "
                            "ONNX models only (platform onnxruntime_onnx or backend onnxruntime)")  # fmt: skip
    file = config.default_model_filename or DEFAULT_FILE
    if "/" in file or file in ("", ".", ".."):
        raise ManifestError(f"{where}: default_model_filename {file!r} is not a file name")
    threads = _threads(config)
    manifest = Manifest(name=name, version=number, task="", graphs={}, session={"intra_op_threads": threads},
                        config={PLAIN_KEY: True})  # fmt: skip
    try:  # regular files only, with a stall timeout; the digest of what loads
        record_files(manifest, folder, [file])
    except FileNotFoundError:
        raise ManifestError(f"{folder / file} is missing (no manifest.json either)") from None
    except OSError as exc:  # a FIFO or device in its place, unreadable, a stalled mount
        raise ManifestError(files.describe(folder / file, exc)) from None
    session = create_session(folder / file, replace(session_config, intra_op_threads=threads))
    inputs = [_graph_tensor(a, "input") for a in session.get_inputs()]
    outputs = [_graph_tensor(a, "output") for a in session.get_outputs()]
    batched = config.max_batch_size > 0
    for label, listed, tensors in (("input", config.input, inputs), ("output", config.output, outputs)):
        known = {t.name: i for i, t in enumerate(tensors)}
        for entry in listed:
            if entry.name not in known:
                raise ManifestError(f"{where}: {label} {entry.name!r} is not in the graph (its {label}s: {', '.join(known)})")
            tensors[known[entry.name]] = _narrowed(tensors[known[entry.name]], entry, batched, where)
    if config.output:  # Triton serves the outputs its config lists
        wanted = {o.name for o in config.output}
        outputs = [t for t in outputs if t.name in wanted]
    manifest.graphs = {"model": GraphSpec(file, inputs, outputs)}
    check_graph(session, manifest.graphs["model"], "model")
    return ModelRuntime(manifest, folder, {"model": session})
