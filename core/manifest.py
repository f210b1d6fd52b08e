"""The model manifest: seedlock's contract between training, export and serving.

One ``manifest.json`` sits in every model version folder of a Triton-style
repository (``<repo>/<model>/<version>/manifest.json``). It names the graphs
of the model (one for a segmenter; encoder + decoder step for sequence models),
their tensors, the pre/post-processing the server must apply, the label table,
the training seed and config, export-time metrics, tool versions, and the
sha256 of every file it describes. The server refuses a version whose files
do not match (:func:`verify_files`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seedlock.core import files
from seedlock.core.dtypes import BY_MANIFEST
from seedlock.core.engines import EngineRecord

# 2: the parity reference moved out of preprocess/postprocess into its own
# section; version-1 manifests are read by moving it (see _upgrade).
SCHEMA_VERSION = 2
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 256 << 20  # a manifest holds tables (labels, a vocabulary), never gigabytes
DTYPES = tuple(BY_MANIFEST)


class ManifestError(ValueError):
    """A manifest is missing, malformed, or does not match the files beside it."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output. ``-1`` marks a dynamic axis."""

    name: str
    dtype: str
    shape: list[int]

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ManifestError(f"tensor {self.name!r}: unsupported dtype {self.dtype!r}")


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph (or TensorRT plan) of a model and its tensors."""

    file: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclass
class Manifest:
    name: str
    version: int
    task: str
    graphs: dict[str, GraphSpec]
    files: dict[str, str] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    postprocess: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    # graph role -> TensorRT engine record (seedlock.core.engines.EngineRecord as a dict);
    # written by `seedlock export trt`, empty for ONNX-only models.
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What `seedlock export verify` re-checks without the checkpoint, for every
    # task alike: ``graphs[role]`` = {"inputs": {tensor: file.npy}, "outputs":
    # {tensor: file.npy}} run through each graph, ``tolerance`` on them, and
    # ``task``: the answer the task's whole pipeline gave (captions, a melody).
    reference: dict[str, Any] = field(default_factory=dict)
    # How the graphs' sessions must be built for these answers:
    # ``intra_op_threads`` (see seedlock.core.sessions.DEFAULT_MODEL_THREADS);
    # for a reduced-precision version also ``runtime`` ("openvino"),
    # ``precision`` ("bf16"/"int8"), ``graphs`` (each graph's precision: a
    # sequence model may keep its decoder step in fp32) and, for int8,
    # ``calibration`` (per quantized graph).
    session: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    # -- serialization -------------------------------------------------
    def to_json(self) -> str:
        """Canonical JSON (sorted keys, fixed indent) so re-exports are byte-identical."""
        return json.dumps(asdict(self), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        if not isinstance(data, dict):
            raise ManifestError(f"malformed manifest: a JSON {type(data).__name__}, not an object")
        try:
            data = _upgrade(data)
            if data.get("schema_version") != SCHEMA_VERSION:
                raise ManifestError(
                    f"manifest schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}; "
                    "re-export the model with this seedlock version"
                )
            graphs = {
                role: GraphSpec(
                    file=g["file"],
                    inputs=[TensorSpec(**t) for t in g["inputs"]],
                    outputs=[TensorSpec(**t) for t in g["outputs"]],
                )
                for role, g in data["graphs"].items()
            }
            fields = {k: v for k, v in data.items() if k != "graphs"}
            return cls(graphs=graphs, **fields)
        except ManifestError:
            raise
        except (KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"malformed manifest: {exc!r}") from exc

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        path = Path(path)
        try:
            if path.is_dir():
                path = path / MANIFEST_NAME
            # Regular files only, with a stall timeout: a FIFO here would block start-up for good.
            data = json.loads(files.read_text(path, MAX_MANIFEST_BYTES))
        except FileNotFoundError as exc:
            raise ManifestError(f"no manifest at {path}") from exc
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting, 4300-digit ints
            raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
        except OSError as exc:
            raise ManifestError(files.describe(path, exc)) from exc
        return cls.from_dict(data)

    def save(self, folder: str | Path) -> Path:
        out = Path(folder) / MANIFEST_NAME
        out.write_text(self.to_json())
        return out

    # -- digests -------------------------------------------------------
    @property
    def digest(self) -> str:
        """The model digest echoed in responses: sha256 over the canonical manifest,
        which itself pins every file's sha256."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def intra_op_threads(self) -> int:
        """The per-session intra-op thread count the model's answers are pinned to."""
        from seedlock.core.sessions import DEFAULT_MODEL_THREADS, MAX_MODEL_THREADS

        value = self.session.get("intra_op_threads", DEFAULT_MODEL_THREADS)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_MODEL_THREADS:
            raise ManifestError(f"model {self.name!r}: session.intra_op_threads {value!r} is not a thread count (1..{MAX_MODEL_THREADS})")
        return value

    @property
    def precision(self) -> str:
        """The arithmetic the model's answers were gated at: "fp32" (ONNX Runtime,
        the default), or "bf16"/"int8" (OpenVINO, ``seedlock export --precision``)."""
        from seedlock.core.openvino_runtime import PRECISIONS

        value = self.session.get("precision", "fp32")
        if value not in PRECISIONS:
            raise ManifestError(f"model {self.name!r}: session.precision {value!r} is not one of {', '.join(PRECISIONS)}")
        return value

    def precision_of(self, role: str) -> str:
        """The precision graph ``role`` runs at: ``session.graphs[role]`` where a
        reduced-precision version keeps some graphs in fp32, else :attr:`precision`."""
        from seedlock.core.openvino_runtime import PRECISIONS

        per_graph = self.session.get("graphs", {})
        value = per_graph.get(role, self.precision) if isinstance(per_graph, dict) else None
        if value not in PRECISIONS:
            raise ManifestError(f"model {self.name!r}: session.graphs[{role!r}] {value!r} is not one of {', '.join(PRECISIONS)}")
        return value

    @property
    def runtime(self) -> str:
        """The runtime the model's answers are pinned to: "onnxruntime" or "openvino"."""
        value = self.session.get("runtime", "onnxruntime")
        if value not in ("onnxruntime", "openvino"):
            raise ManifestError(f"model {self.name!r}: session.runtime {value!r} is not onnxruntime or openvino")
        if value == "onnxruntime" and self.precision != "fp32":
            raise ManifestError(f"model {self.name!r}: precision {self.precision} needs session.runtime openvino")
        return value

    def graph(self, role: str = "model") -> GraphSpec:
        try:
            return self.graphs[role]
        except KeyError:
            raise ManifestError(f"model {self.name!r} has no graph {role!r} (has: {sorted(self.graphs)})") from None

    def engine(self, role: str = "model") -> EngineRecord | None:
        """The TensorRT engine recorded for a graph, if any."""
        data = self.engines.get(role)
        if data is None:
            return None
        try:
            return EngineRecord.from_dict(data)
        except ValueError as exc:
            raise ManifestError(f"model {self.name!r} graph {role!r}: {exc}") from None


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Read a version-1 manifest as version 2: its reference sat in
    ``preprocess`` (single-graph tasks) or ``postprocess`` (sequence tasks)."""
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        return data
    data = {**data, "schema_version": SCHEMA_VERSION}
    for section in ("preprocess", "postprocess"):
        old = dict(data.get(section) or {})
        ref = old.pop("reference", None)
        if ref is None:
            continue
        data[section] = old
        if "input" in ref and "output" in ref:  # one graph, one input and one output
            graph = data["graphs"]["model"]
            data["reference"] = {
                "graphs": {"model": {"inputs": {graph["inputs"][0]["name"]: ref["input"]},
                                     "outputs": {graph["outputs"][0]["name"]: ref["output"]}}},
                "tolerance": ref.get("tolerance", 1e-4), "seed": ref.get("seed"),
            }  # fmt: skip
        else:
            data["reference"] = {"task": ref}
    return data


def sha256_file(path: str | Path) -> str:
    """The sha256 of a regular file (read with a stall timeout, see :mod:`seedlock.core.files`)."""
    h = hashlib.sha256()
    for block in files.chunks(path):
        h.update(block)
    return h.hexdigest()


def record_files(manifest: Manifest, folder: str | Path, names: list[str]) -> None:
    """Store the sha256 of each named file (relative to ``folder``) in the manifest."""
    folder = Path(folder)
    manifest.files = {name: sha256_file(folder / name) for name in sorted(names)}


def verify_files(manifest: Manifest, folder: str | Path) -> None:
    """Raise :class:`ManifestError` unless every recorded file exists with its digest
    and every graph file is recorded."""
    folder = Path(folder)
    for role, graph in manifest.graphs.items():
        if graph.file not in manifest.files:
            raise ManifestError(f"graph {role!r} file {graph.file!r} has no recorded digest")
    for role, engine in manifest.engines.items():
        if engine.get("file") not in manifest.files:
            raise ManifestError(f"engine for graph {role!r} ({engine.get('file')!r}) has no recorded digest")
    for name, expected in manifest.files.items():
        path = folder / name
        try:
            actual = sha256_file(path)
        except FileNotFoundError:
            raise ManifestError(f"{path} is missing (half-written model?)") from None
        except OSError as exc:  # a FIFO or device in its place, unreadable, a stalled mount
            raise ManifestError(files.describe(path, exc)) from None
        if actual != expected:
            raise ManifestError(
                f"{path}: sha256 {actual[:12]}… does not match the manifest's {expected[:12]}… "
                "(file changed after export; re-export the model)"
            )
