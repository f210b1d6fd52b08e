"""``seedlock export trt``: TensorRT engines for an exported model version.

For every graph ``<stem>.onnx`` of the version, build ``<stem>.plan`` next to
it and record it in the manifest (``manifest.engines[role]``: precision,
optimization profile, and the TensorRT/CUDA/GPU it is tied to), re-pinning
the digests. The ONNX graph stays the portable form; the plan is the fast one
for this kind of GPU, and the server falls back to the ONNX graph wherever the
plan does not fit the host.

Each ``ai.seedlock::BiActivation`` node becomes one fused plugin layer
(:mod:`seedlock.export.tensorrt_plugin`) rather than the five elementwise
layers of its ONNX function: before parsing, the nodes get the attributes the
TensorRT ONNX parser maps to a plugin (``plugin_namespace``, ``aot``) and the
model-local function is removed, so a parser that cannot find the plugin fails
loudly instead of silently inlining the function. The build then checks that
the network has exactly one plugin layer per node.

Networks are strongly typed (TensorRT 11 has no other kind): ``--fp16``
rewrites the graph to float16 (:mod:`seedlock.export.onnx_fp16`) with float32
inputs and outputs. TF32 is switched off for fp32 engines, whose answers must
stay within 1e-4 of ONNX Runtime's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import onnx
from onnx import helper

from seedlock.core.engines import EngineRecord
from seedlock.core.manifest import GraphSpec, Manifest, record_files
from seedlock.core.repository import load_version
from seedlock.export.bi_activation_onnx import DOMAIN, OP_TYPE
from seedlock.export.errors import ExportError
from seedlock.export.onnx_fp16 import to_float16
from seedlock.export.tensorrt_plugin import PLUGIN_ID, PLUGIN_NAMESPACE

# Parity of an engine against ONNX Runtime, relative to the output's peak magnitude.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


@dataclass(frozen=True)
class EngineOptions:
    """How ``seedlock export trt`` builds engines."""

    fp16: bool = False
    workspace_mib: int = 1024
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ExportError(
                f"batch sizes must satisfy 1 <= min <= opt <= max (got {self.min_batch}, {self.opt_batch}, {self.max_batch})"
            )
        if self.workspace_mib < 16:
            raise ExportError(f"--workspace {self.workspace_mib} MiB is too small; give at least 16")

    @property
    def precision(self) -> str:
        return "fp16" if self.fp16 else "fp32"


# -- the ONNX graph TensorRT parses -------------------------------------------
def prepare_onnx(model: onnx.ModelProto, fp16: bool = False) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` ready for TensorRT's ONNX parser, and its number of
    BiActivation nodes (each must become one plugin layer)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    count = 0
    for node in out.graph.node:
        if node.domain == DOMAIN and node.op_type == OP_TYPE:
            count += 1
            names = {a.name for a in node.attribute}
            if "plugin_namespace" not in names:
                node.attribute.append(helper.make_attribute("plugin_namespace", PLUGIN_NAMESPACE))
            if "aot" not in names:  # the kernel is compiled into the engine, not called back in Python
                node.attribute.append(helper.make_attribute("aot", 1))
    kept = [f for f in out.functions if not (f.domain == DOMAIN and f.name == OP_TYPE)]
    del out.functions[:]
    out.functions.extend(kept)
    if fp16:
        out = to_float16(out)
    return out, count


def profile_shapes(manifest: Manifest, role: str, options: EngineOptions) -> dict[str, dict[str, list[int]]]:
    """min/opt/max shapes of every graph input for the optimization profile.

    Axis 0 is the batch axis (``--min/opt/max-batch``). Other dynamic axes are
    fixed by what the server feeds: image height and width by the letterbox
    size (``preprocess.size``); token sequences range from 1 to the model's
    ``max_length``.
    """
    spec: GraphSpec = manifest.graph(role)
    size = manifest.preprocess.get("size")
    max_length = manifest.postprocess.get("max_length")
    shapes: dict[str, dict[str, list[int]]] = {}
    for t in spec.inputs:
        lo, mid, hi = [], [], []
        for axis, d in enumerate(t.shape):
            if d != -1:
                rng = (d, d, d)
            elif axis == 0:
                rng = (options.min_batch, options.opt_batch, options.max_batch)
            elif len(t.shape) == 4 and axis in (2, 3) and size:
                rng = (int(size),) * 3
            elif len(t.shape) == 2 and axis == 1 and max_length:
                rng = (1, max(1, int(max_length) // 2), int(max_length))
            else:
                raise ExportError(
                    f"graph {role!r} input {t.name!r} axis {axis} is dynamic and seedlock cannot tell its range "
                    "(no preprocess.size or postprocess.max_length in the manifest)"
                )
            lo.append(rng[0]), mid.append(rng[1]), hi.append(rng[2])
        shapes[t.name] = {"min": lo, "opt": mid, "max": hi}
    return shapes


# -- TensorRT ---------------------------------------------------------------
def require_tensorrt() -> Any:
    """The ``tensorrt`` module with our plugin registered, or ExportError saying what is missing."""
    from seedlock.core import cuda
    from seedlock.export import tensorrt_plugin

    try:
        tensorrt_plugin.register()
    except tensorrt_plugin.PluginUnavailable as exc:
        raise ExportError(str(exc)) from None
    reason = cuda.available()
    if reason:
        raise ExportError(f"building a TensorRT engine needs an NVIDIA GPU: {reason}")
    import tensorrt as trt

    return trt


def build_engine(onnx_bytes: bytes, profile: dict[str, dict[str, list[int]]], options: EngineOptions,
                 plugin_nodes: int = 0) -> bytes:
    """Parse, check and build one serialized engine."""
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # default (and only) mode in TensorRT 11
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT's ONNX parser rejected the graph: {errors}")
    plugin_layers = sum(1 for i in range(network.num_layers) if "PLUGIN" in str(network.get_layer(i).type))
    if plugin_layers != plugin_nodes:
        raise ExportError(
            f"the graph has {plugin_nodes} BiActivation node(s) but the parsed network has {plugin_layers} plugin "
            f"layer(s); TensorRT did not map the nodes to {PLUGIN_ID}"
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer names and types for engine_layers()
    opt_profile = builder.create_optimization_profile()
    for name, s in profile.items():
        opt_profile.set_shape(name, s["min"], s["opt"], s["max"])
    config.add_optimization_profile(opt_profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError("TensorRT failed to build the engine (see the TensorRT messages above)")
    return bytes(plan)


def engine_layers(plan: bytes) -> list[dict[str, Any]]:
    """The layers of a serialized engine as TensorRT's engine inspector reports them."""
    trt = require_tensorrt()
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise ExportError("TensorRT could not deserialize the engine")
    info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
    return [layer if isinstance(layer, dict) else {"Name": layer} for layer in info.get("Layers", [])]


def plugin_layers(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The inspector's plugin layers (kernels that are our BiActivation)."""
    return [
        layer for layer in layers
        if "plugin" in str(layer.get("LayerType", "")).lower() or OP_TYPE in str(layer.get("Name", ""))
    ]  # fmt: skip


def host_record(plan_file: str, options: EngineOptions, profile: dict, plugins: list[str]) -> EngineRecord:
    import tensorrt as trt

    from seedlock.core import cuda

    host = cuda.host_environment(trt.__version__)
    return EngineRecord(
        file=plan_file, precision=options.precision, profile=profile, plugins=plugins,
        workspace_mib=options.workspace_mib, **host,
    )  # fmt: skip


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_engines(
    model_dir: str | Path,
    options: EngineOptions,
    version: int | None = None,
    log: Callable[[str], None] = print,
) -> list[EngineRecord]:
    """Build an engine for every graph of ``REPOSITORY/NAME`` (its highest
    version unless ``version``), write them beside the ONNX graphs and record
    them in the manifest. All engines are built before anything is written."""
    model_dir = Path(model_dir)
    mv = load_version(model_dir.parent, model_dir.name, version)
    manifest = mv.manifest
    built: dict[str, tuple[EngineRecord, bytes]] = {}
    for role, spec in sorted(manifest.graphs.items()):
        prepared, nodes = prepare_onnx(onnx.load(mv.folder / spec.file), fp16=options.fp16)
        profile = profile_shapes(manifest, role, options)
        log(f"{role}: building {options.precision} engine from {spec.file} "
            f"({nodes} BiActivation node(s) -> {PLUGIN_ID} plugin), profile {_describe(profile)}")
        plan = build_engine(prepared.SerializeToString(), profile, options, plugin_nodes=nodes)
        fused = plugin_layers(engine_layers(plan)) if nodes else []
        if len(fused) < nodes:
            raise ExportError(f"{role}: the built engine has {len(fused)} plugin layer(s) for {nodes} BiActivation node(s)")
        plan_file = Path(spec.file).with_suffix(".plan").name
        built[role] = (host_record(plan_file, options, profile, [PLUGIN_ID] if nodes else []), plan)
        log(f"{role}: {plan_file} {len(plan) / 2**20:.1f} MiB, {len(fused)} plugin layer(s)")
    for role, (record, plan) in built.items():
        _write_atomically(mv.folder / record.file, plan)
        manifest.engines[role] = record.to_dict()
    record_files(manifest, mv.folder, sorted(set(manifest.files) | {r.file for r, _ in built.values()}))
    _write_atomically(mv.folder / "manifest.json", manifest.to_json().encode())
    records = [r for r, _ in built.values()]
    if records:
        h = records[0]
        log(f"recorded in {mv.folder / 'manifest.json'}: TensorRT {h.tensorrt}, CUDA {h.cuda}, {h.gpu} (sm {h.compute_capability})")
    return records


def _describe(profile: dict[str, dict[str, list[int]]]) -> str:
    return ", ".join(f"{n} {'x'.join(map(str, s['min']))}..{'x'.join(map(str, s['max']))}" for n, s in profile.items())
