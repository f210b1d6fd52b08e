"""``config.pbtxt``: Triton's model configuration, written at export and read
by the server, through Triton's ``ModelConfig`` message (protobuf text
format), never by string formatting.

What seedlock takes from it: ``version_policy`` (which versions load),
``max_batch_size``, ``dynamic_batching`` (preferred sizes, queue delay, queue
size) and the ``instance_group`` count; for a plain Triton model (no
``manifest.json``) also its tensors. The schema is Triton's whole
``model_config.proto`` (vendored), so a field Triton knows parses and one it
does not refuses the model, as Triton would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from seedlock.core import files
from seedlock.core.dtypes import manifest_to_triton
from seedlock.core.manifest import GraphSpec, Manifest, ManifestError
from seedlock.protos.inference import model_config_pb2 as mc

log = logging.getLogger("seedlock.config")

CONFIG_NAME = "config.pbtxt"
MAX_CONFIG_BYTES = 16 << 20  # a model configuration is a few KB of text
PLATFORM = "onnxruntime_onnx"
# Requests of a batchable graph grouped into one call: large enough to fill
# the cores, small enough that one call stays a few model latencies long.
DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_PREFERRED = (4, 8)
# 0: never hold a request back to wait for companions. Batches form from what
# queued while the instances were busy, so an idle server adds no latency.
DEFAULT_QUEUE_DELAY_US = 0
# Triton's ONNX Runtime backend reads this parameter; seedlock mirrors the
# manifest's pinned count into it so Triton runs the same arithmetic.
THREADS_PARAMETER = "intra_op_thread_count"
TASK_PARAMETER = "seedlock_task"


@dataclass(frozen=True)
class Scheduling:
    """What the server's scheduler takes from a model's ``config.pbtxt``."""

    max_batch_size: int = 0
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    max_queue_size: int = 0  # 0: the server's default
    instance_count: int = 0  # 0: the server's choice
    dynamic_batching: bool = False


def batch_axis(graph: GraphSpec) -> bool:
    """Every input and output has a leading dynamic axis: requests can be stacked on it."""
    tensors = [*graph.inputs, *graph.outputs]
    return bool(tensors) and all(t.shape and t.shape[0] == -1 for t in tensors)


def request_batchable(manifest: Manifest) -> bool:
    """One request is one call of the ``model`` graph, rows on its batch axis.
    Multi-graph models (encoder + decoder step) run a pipeline of calls per
    request and are scheduled a request at a time."""
    graph = manifest.graphs.get("model")
    return graph is not None and len(manifest.graphs) == 1 and batch_axis(graph)


def build(manifest: Manifest, max_batch_size: int | None = None) -> mc.ModelConfig:
    """The ``ModelConfig`` for a model version's ``model`` graph (its first
    graph for multi-graph models). A request-batchable graph gets
    ``max_batch_size`` (default :data:`DEFAULT_MAX_BATCH_SIZE`) with its batch
    axis left out of ``dims``, as Triton expects, and a ``dynamic_batching`` block."""
    role = "model" if "model" in manifest.graphs else sorted(manifest.graphs)[0]
    graph = manifest.graphs[role]
    batched = request_batchable(manifest)
    limit = (max_batch_size or DEFAULT_MAX_BATCH_SIZE) if batched else 0
    config = mc.ModelConfig(name=manifest.name, platform=PLATFORM, max_batch_size=limit,
                            default_model_filename=graph.file)  # fmt: skip
    for tensor, add in ((t, config.input.add) for t in graph.inputs):
        add(name=tensor.name, data_type=mc.DataType.Value(manifest_to_triton(tensor.dtype)),
            dims=tensor.shape[1:] if batched else tensor.shape)  # fmt: skip
    for tensor in graph.outputs:
        config.output.add(name=tensor.name, data_type=mc.DataType.Value(manifest_to_triton(tensor.dtype)),
                          dims=tensor.shape[1:] if batched else tensor.shape)  # fmt: skip
    # Every exported version serves, on Triton too (its default is the latest one only).
    config.version_policy.all.SetInParent()
    # On the CPU, where the export host computed the reference bytes; no count:
    # seedlock chooses from its thread budget, Triton runs one.
    config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU)
    if batched:
        config.dynamic_batching.preferred_batch_size.extend(p for p in DEFAULT_PREFERRED if p <= limit)
        config.dynamic_batching.max_queue_delay_microseconds = DEFAULT_QUEUE_DELAY_US
    config.parameters[TASK_PARAMETER].string_value = manifest.task
    config.parameters[THREADS_PARAMETER].string_value = str(manifest.intra_op_threads)
    return config


def to_text(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def parse(text: str, where: str = CONFIG_NAME) -> mc.ModelConfig:
    """A ``config.pbtxt`` as a ``ModelConfig``; :class:`ManifestError` naming
    the file and the problem when it is not one."""
    config = mc.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ManifestError(f"{where}: not a Triton model configuration ({exc})") from None
    return config


def read(model_dir: str | Path) -> mc.ModelConfig | None:
    """The model folder's ``config.pbtxt``, or None when it has none. Regular
    files only, read with a stall timeout (:mod:`seedlock.core.files`)."""
    path = Path(model_dir) / CONFIG_NAME
    try:
        text = files.read_text(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a FIFO or device in its place, unreadable, too large, a stalled mount
        raise ManifestError(files.describe(path, exc)) from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text ({exc})") from None
    return parse(text, str(path))


def select_versions(config: mc.ModelConfig | None, versions: list[int], where: str = CONFIG_NAME) -> tuple[list[int], list[int]]:
    """The versions ``config``'s ``version_policy`` serves out of the
    ``versions`` on disk, and those it names that are not there. Triton's
    rules: ``latest { num_versions: n }`` the n highest (n = 1 by default and
    when the config has no policy), ``all``, ``specific { versions: [...] }``.
    A model without any ``config.pbtxt`` serves every version (seedlock's rule)."""
    on_disk = sorted(versions)
    if config is None:
        return on_disk, []
    policy = config.version_policy if config.HasField("version_policy") else None
    choice = policy.WhichOneof("policy_choice") if policy is not None else None
    if choice == "all":
        return on_disk, []
    if choice == "specific":
        named = sorted(set(int(v) for v in policy.specific.versions))
        if not named:
            raise ManifestError(f"{where}: version_policy specific names no version")
        return [v for v in on_disk if v in named], [v for v in named if v not in on_disk]
    count = int(policy.latest.num_versions) if choice == "latest" else 1
    if count < 1:
        raise ManifestError(f"{where}: version_policy latest num_versions must be at least 1, got {count}")
    return on_disk[-count:], []


def scheduling(config: mc.ModelConfig | None, manifest: Manifest, where: str = CONFIG_NAME) -> Scheduling:
    """The scheduler settings of ``config`` for ``manifest``'s model, checked
    against the graph: a batch limit on a graph without a batch axis, or
    preferred sizes over the limit, refuse the model with the reason."""
    if config is None:
        return Scheduling()
    if config.name and config.name != manifest.name:
        raise ManifestError(f"{where}: name {config.name!r} is not the model's folder name {manifest.name!r}")
    limit = int(config.max_batch_size)
    if limit < 0:
        raise ManifestError(f"{where}: max_batch_size {limit} is negative")
    if limit and not request_batchable(manifest):
        raise ManifestError(
            f"{where}: max_batch_size {limit}, but model {manifest.name!r} has no batch axis on every tensor of "
            "one 'model' graph; set max_batch_size: 0"
        )
    batching = config.dynamic_batching if config.HasField("dynamic_batching") else None
    preferred: tuple[int, ...] = ()
    delay = queue = 0
    if batching is not None:
        preferred = tuple(sorted(set(int(p) for p in batching.preferred_batch_size)))
        bad = [p for p in preferred if not 1 <= p <= max(limit, 1)]
        if bad:
            raise ManifestError(f"{where}: preferred_batch_size {bad} outside 1..max_batch_size ({limit})")
        delay = int(batching.max_queue_delay_microseconds)
        if delay > 10_000_000:
            raise ManifestError(f"{where}: max_queue_delay_microseconds {delay} is over 10 s")
        if batching.HasField("default_queue_policy"):
            queue = int(batching.default_queue_policy.max_queue_size)
    counts = [int(g.count) for g in config.instance_group]
    if any(c < 0 for c in counts):
        raise ManifestError(f"{where}: instance_group count {min(counts)} is negative")
    threads = config.parameters.get(THREADS_PARAMETER)
    if threads is not None and threads.string_value.strip() not in ("", str(manifest.intra_op_threads)):
        log.warning(
            "%s: %s %r differs from the %d thread(s) model %s's answers are pinned to (its manifest); using %d",
            where, THREADS_PARAMETER, threads.string_value, manifest.intra_op_threads, manifest.name, manifest.intra_op_threads,
        )
    return Scheduling(limit, preferred, delay, queue, sum(counts), batching is not None and limit > 0)
