"""Writing a model version into a Triton-style repository.

    <repository>/<model>/config.pbtxt
    <repository>/<model>/<version>/<graph files>
    <repository>/<model>/<version>/manifest.json

A model of several graphs (the captioner's and composer's encoder + decoder
step) also gets one Triton model per graph, so Triton (and seedlock's KServe
v2 endpoint) can run each graph:

    <repository>/<model>.<graph>/config.pbtxt
    <repository>/<model>.<graph>/<version>/model.onnx        (a hard link to the model's graph file)
    <repository>/<model>.<graph>/<version>/manifest.json     (its own digests, and which model it is part of)

The task-level model stays the one seedlock's task service runs; each graph
model is verified against its own manifest like any other model.

The version folder is assembled under a hidden temporary name and renamed into
place, so a reader never sees a half-written version and a failed export
leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from seedlock.core import model_config
from seedlock.core.errors import UserError
from seedlock.core.manifest import GraphSpec, Manifest, record_files
from seedlock.core.sessions import DEFAULT_MODEL_THREADS, MAX_MODEL_THREADS


def config_pbtxt(manifest: Manifest, max_batch_size: int | None = None) -> str:
    """Triton's model configuration for the manifest (see :func:`seedlock.core.model_config.build`)."""
    return model_config.to_text(model_config.build(manifest, max_batch_size))


def runtime_reference(manifest: Manifest, folder: Path) -> list[str]:
    """Run each reference input through the runtime the model is pinned to, as
    the server will (ONNX Runtime, or OpenVINO at a bf16/int8 precision; the
    model's thread count, CPU) and store the outputs beside the torch ones, so
    a server can tell whether it reproduces the export host's bytes
    (``bit_exact_with_export``). Returns the files written."""
    graphs = manifest.reference.get("graphs", {})
    if not graphs:
        return []
    import numpy as np

    from seedlock.core.sessions import graph_session

    written: list[str] = []
    stored: dict[str, dict[str, str]] = {}
    for role, entry in sorted(graphs.items()):
        graph = manifest.graphs.get(role)
        if graph is None or not (folder / graph.file).is_file():
            continue
        session = graph_session(manifest, folder / graph.file)
        inputs = {tensor: np.load(folder / name, allow_pickle=False) for tensor, name in entry["inputs"].items()}
        names = sorted(entry["outputs"])
        stored[role] = {}
        for tensor, array in zip(names, session.run(names, inputs)):
            name = f"reference.runtime.{role}.{tensor}.npy"
            np.save(folder / name, np.ascontiguousarray(array), allow_pickle=False)
            stored[role][tensor] = name
            written.append(name)
    manifest.reference["runtime"] = stored
    return written


def write_model_version(
    repository: str | Path,
    manifest: Manifest,
    files: dict[str, bytes],
    overwrite: bool = False,
    intra_op_threads: int = DEFAULT_MODEL_THREADS,
) -> Path:
    """Write ``files`` and the manifest (with their digests) as
    ``<repository>/<manifest.name>/<manifest.version>/`` and (re)write the
    model's ``config.pbtxt``. Returns the version folder.

    ``intra_op_threads``: the per-session thread count the model's answers are
    pinned to. ONNX Runtime's last bits depend on it, so it is part of the
    model: servers run more or fewer instances, never another count. One
    thread (the default) keeps a row's bytes the same in every batch, so the
    server can batch requests; more threads cut one request's latency and
    usually cost batching (the server's load-time proof decides)."""
    model_dir = Path(repository) / manifest.name
    final = model_dir / str(manifest.version)
    if final.exists() and not overwrite:
        raise UserError(f"{final} already exists; pass --overwrite or choose another --version")
    for role, graph in manifest.graphs.items():
        if graph.file not in files:
            raise ValueError(f"graph {role!r} names {graph.file!r}, which is not among the files to write")
    if not 1 <= intra_op_threads <= MAX_MODEL_THREADS:
        raise UserError(f"intra-op threads must be 1 to {MAX_MODEL_THREADS}, got {intra_op_threads}")
    manifest.session = {**manifest.session, "intra_op_threads": int(intra_op_threads)}
    with _staged(model_dir, final) as staging:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        names = list(files) + runtime_reference(manifest, staging)
        record_files(manifest, staging, names)
        manifest.save(staging)
    (model_dir / model_config.CONFIG_NAME).write_text(config_pbtxt(manifest))
    if len(manifest.graphs) > 1:
        for role in sorted(manifest.graphs):
            write_graph_model(repository, manifest, final, role)
    return final


@contextmanager
def _staged(model_dir: Path, final: Path) -> Iterator[Path]:
    """A scratch folder next to ``final`` to write a version into; on success
    it replaces ``final`` in one rename (a server never sees a half-written
    version), on failure it is removed."""
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=model_dir))
    try:
        yield staging
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        os.chmod(final, 0o755)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


GRAPH_FILE = "model.onnx"  # Triton's default model file name for onnxruntime_onnx


def graph_model_name(model: str, role: str) -> str:
    """The Triton model name of one graph of a multi-graph model (``captioner.encoder``)."""
    return f"{model}.{role}"


def graph_manifest(manifest: Manifest, role: str) -> Manifest:
    """The manifest of graph ``role`` of ``manifest`` as a model of its own:
    one ``model`` graph, the same threads and seed, the graph's reference
    tensors, and ``config.part_of`` naming the model it belongs to. Its task
    (``<task>.<role>``) has no task service: it is served over KServe v2."""
    graph = manifest.graphs[role]
    reference: dict = {}
    refs = manifest.reference
    if role in refs.get("graphs", {}):
        reference = {"graphs": {"model": refs["graphs"][role]}, "tolerance": refs.get("tolerance"), "seed": refs.get("seed")}
        if role in refs.get("runtime", {}):
            reference["runtime"] = {"model": refs["runtime"][role]}
    return Manifest(
        name=graph_model_name(manifest.name, role), version=manifest.version, task=f"{manifest.task}.{role}",
        graphs={"model": GraphSpec(GRAPH_FILE, list(graph.inputs), list(graph.outputs))},
        seed=manifest.seed, tools=dict(manifest.tools), reference=reference, session=dict(manifest.session),
        config={"part_of": {"model": manifest.name, "version": manifest.version, "graph": role, "file": graph.file,
                            "sha256": manifest.files.get(graph.file)}},
    )  # fmt: skip


def _link(source: Path, target: Path) -> None:
    """A hard link (no second copy of the weights), or a copy across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_graph_model(repository: str | Path, manifest: Manifest, folder: Path, role: str) -> Path:
    """Write graph ``role`` of the model version in ``folder`` as model
    ``<name>.<role>`` (see the module docstring), replacing that version of it
    if present: it is derived from the version just written. Returns its version folder."""
    sub = graph_manifest(manifest, role)
    model_dir = Path(repository) / sub.name
    final = model_dir / str(sub.version)
    with _staged(model_dir, final) as staging:
        _link(folder / manifest.graphs[role].file, staging / GRAPH_FILE)
        names = [GRAPH_FILE]
        ref = sub.reference
        for name in sorted({*ref.get("graphs", {}).get("model", {}).get("inputs", {}).values(),
                            *ref.get("graphs", {}).get("model", {}).get("outputs", {}).values(),
                            *ref.get("runtime", {}).get("model", {}).values()}):  # fmt: skip
            _link(folder / name, staging / name)
            names.append(name)
        record_files(sub, staging, names)
        sub.save(staging)
    (model_dir / model_config.CONFIG_NAME).write_text(config_pbtxt(sub))
    return final
