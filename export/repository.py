"""Writing a model version into a Triton-style repository.

    <repository>/<model>/config.pbtxt
    <repository>/<model>/<version>/<graph files>
    <repository>/<model>/<version>/manifest.json

The version folder is assembled under a hidden temporary name and renamed into
place, so a reader never sees a half-written version and a failed export
leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from seedlock.core.dtypes import manifest_to_triton
from seedlock.core.errors import UserError
from seedlock.core.manifest import Manifest, TensorSpec, record_files


def _tensor_block(kind: str, tensors: list[TensorSpec]) -> str:
    items = []
    for t in tensors:
        dims = ", ".join(str(d) for d in t.shape)
        items.append(f'  {{\n    name: "{t.name}"\n    data_type: {manifest_to_triton(t.dtype)}\n    dims: [ {dims} ]\n  }}')
    return f"{kind} [\n" + ",\n".join(items) + "\n]\n"


def config_pbtxt(manifest: Manifest, platform: str = "onnxruntime_onnx") -> str:
    """Triton model configuration for the manifest's ``model`` graph.

    The batch axis is part of ``dims`` (-1), so ``max_batch_size`` is 0.
    Multi-graph models (encoder + decoder step) are driven by seedlock's own
    task services; their config names the first graph only, for inspection.
    """
    role = "model" if "model" in manifest.graphs else sorted(manifest.graphs)[0]
    graph = manifest.graphs[role]
    text = (
        f'name: "{manifest.name}"\n'
        f'platform: "{platform}"\n'
        "max_batch_size: 0\n"
        + _tensor_block("input", graph.inputs)
        + _tensor_block("output", graph.outputs)
        + f'default_model_filename: "{graph.file}"\n'
        + 'parameters {\n  key: "seedlock_task"\n  value: { string_value: "' + manifest.task + '" }\n}\n'
    )
    return text


def write_model_version(
    repository: str | Path,
    manifest: Manifest,
    files: dict[str, bytes],
    overwrite: bool = False,
) -> Path:
    """Write ``files`` and the manifest (with their digests) as
    ``<repository>/<manifest.name>/<manifest.version>/`` and (re)write the
    model's ``config.pbtxt``. Returns the version folder."""
    model_dir = Path(repository) / manifest.name
    final = model_dir / str(manifest.version)
    if final.exists() and not overwrite:
        raise UserError(f"{final} already exists; pass --overwrite or choose another --version")
    for role, graph in manifest.graphs.items():
        if graph.file not in files:
            raise ValueError(f"graph {role!r} names {graph.file!r}, which is not among the files to write")
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{manifest.version}.", dir=model_dir))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        record_files(manifest, staging, list(files))
        manifest.save(staging)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        os.chmod(final, 0o755)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (model_dir / "config.pbtxt").write_text(config_pbtxt(manifest))
    return final
