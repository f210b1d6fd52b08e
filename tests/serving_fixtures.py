"""Small real segmentation models for the serving tests.

``make_segmenter_repository`` writes what ``seedlock export onnx`` writes for a
tiny U-Net (bi-ELU, batch norm; one export per shape, reused under other
names and versions), so the server is tested on the exporter's real output.
``write_plain_model`` writes an ONNX graph of a task seedlock has no service
for (served over KServe v2 only); ``write_triton_model`` a plain Triton model
folder (``config.pbtxt`` + ``<version>/model.onnx``, no ``manifest.json``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from seedlock.core.imaging import encode_png
from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.export.repository import write_model_version


def segmenter_onnx(num_classes: int = 4, seed: int = 0, width: int = 8) -> bytes:
    """A plain ONNX graph (not a seedlock export): image (N,3,H,W) float32 ->
    logits (N,K,H,W) float32, for models of a task seedlock has no service for."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((width, 3, 3, 3)) * 0.5).astype(np.float32)
    b1 = (rng.standard_normal(width) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((num_classes, width, 1, 1)) * 0.5).astype(np.float32)
    b2 = (rng.standard_normal(num_classes) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["h"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["h"], ["a"]),
        helper.make_node("Conv", ["a", "w2", "b2"], ["logits"], kernel_shape=[1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "plain_tensors",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes, "height", "width"])],
        initializer=[numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="seedlock-tests")
    model.ir_version = 8  # opset 18's IR version; any ONNX Runtime >= 1.14 loads it
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_plain_model(repository: str | Path, name: str, task: str = "tensors", num_classes: int = 4, version: int = 1) -> Path:
    """A model of a task the table does not know: served over KServe v2 only."""
    manifest = Manifest(
        name=name, version=version, task=task,
        graphs={"model": GraphSpec("model.onnx", [TensorSpec("image", "float32", [-1, 3, -1, -1])],
                                   [TensorSpec("logits", "float32", [-1, num_classes, -1, -1])])},
        tools={"onnx": onnx.__version__},
    )  # fmt: skip
    return write_model_version(repository, manifest, {"model.onnx": segmenter_onnx(num_classes)})


def write_triton_model(
    repository: str | Path, name: str, versions: tuple[int, ...] = (1,), max_batch_size: int = 8, num_classes: int = 4,
    config_text: str | None = None,
) -> Path:
    """A plain Triton ONNX model folder, as a Triton user writes one: a
    ``config.pbtxt`` (through Triton's ModelConfig; ``config_text`` replaces
    it) and ``<version>/model.onnx`` (the graph of :func:`segmenter_onnx`,
    weights drawn from the version number), no ``manifest.json``."""
    from google.protobuf import text_format

    from seedlock.protos.inference import model_config_pb2 as mc

    folder = Path(repository) / name
    for version in versions:
        (folder / str(version)).mkdir(parents=True, exist_ok=True)
        (folder / str(version) / "model.onnx").write_bytes(segmenter_onnx(num_classes, seed=version))
    if config_text is None:
        config = mc.ModelConfig(name=name, platform="onnxruntime_onnx", max_batch_size=max_batch_size)
        lead = [] if max_batch_size else [-1]
        config.input.add(name="image", data_type=mc.TYPE_FP32, dims=[*lead, 3, -1, -1])
        config.output.add(name="logits", data_type=mc.TYPE_FP32, dims=[*lead, num_classes, -1, -1])
        config.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
        config_text = text_format.MessageToString(config)
    (folder / "config.pbtxt").write_text(config_text)
    return folder


def check_configs_match_graphs(repository: str | Path, names: tuple[str, ...] = ()) -> list[str]:
    """Every ``config.pbtxt`` in ``repository`` parses as Triton's ModelConfig
    (strictly: an unknown field fails) and states the tensors of the graph it
    names, as ONNX Runtime reads the graph file: names, data types, and dims
    (the batch axis left out when max_batch_size > 0; -1 where the graph's
    axis is free). Only the models ``names`` when given. Returns the model names checked."""
    import onnxruntime as ort
    from google.protobuf import text_format

    from seedlock.core.dtypes import manifest_to_triton
    from seedlock.protos.inference import model_config_pb2 as mc

    ort_dtypes = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8",
                  "tensor(bool)": "bool", "tensor(float16)": "float16", "tensor(double)": "float64"}  # fmt: skip
    checked = []
    for folder in sorted(p for p in Path(repository).iterdir() if (p / "config.pbtxt").is_file()):
        if names and folder.name not in names:
            continue
        config = text_format.Parse((folder / "config.pbtxt").read_text(), mc.ModelConfig())
        assert config.name == folder.name and config.platform == "onnxruntime_onnx", folder
        versions = sorted(int(v.name) for v in folder.iterdir() if v.name.isdigit())
        graph = folder / str(versions[-1]) / (config.default_model_filename or "model.onnx")
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        lead = 1 if config.max_batch_size > 0 else 0
        for stated, actual in ((config.input, session.get_inputs()), (config.output, session.get_outputs())):
            assert [t.name for t in stated] == [a.name for a in actual], (folder.name, graph.name)
            for tensor, arg in zip(stated, actual):
                assert mc.DataType.Name(tensor.data_type) == manifest_to_triton(ort_dtypes[arg.type]), (folder.name, tensor.name)
                shape = [d if isinstance(d, int) else -1 for d in arg.shape]
                if lead:
                    assert shape[0] == -1, (folder.name, tensor.name, "batched, but the graph's first axis is fixed")
                assert list(tensor.dims) == shape[lead:], (folder.name, tensor.name, list(tensor.dims), shape)
        checked.append(folder.name)
    return checked


_EXPORTS = Path(tempfile.mkdtemp(prefix="seedlock-test-exports-"))
atexit.register(shutil.rmtree, _EXPORTS, ignore_errors=True)


def _exported(num_classes: int, size: int, seed: int, width: int) -> Path:
    """A tiny U-Net (bi-ELU, BN) trained for nothing but exported by the real
    exporter, once per shape in this test process."""
    folder = _EXPORTS / f"k{num_classes}-s{size}-r{seed}-w{width}"
    if not (folder / "segmenter" / "1" / "manifest.json").is_file():
        from conftest import make_tiny_checkpoint

        from seedlock.export.segmenter import export_segmenter

        ckpt = make_tiny_checkpoint(folder / "checkpoint.pt", seed=seed, num_classes=num_classes, width=width, size=size)
        export_segmenter(ckpt, folder, name="segmenter", version=1, log=lambda _: None)
    return folder / "segmenter" / "1"


def make_segmenter_repository(
    path: str | Path,
    name: str = "segmenter",
    num_classes: int = 4,
    size: int = 32,
    seed: int = 0,
    version: int = 1,
    width: int = 4,
) -> Path:
    """Write model ``name`` version ``version`` into the repository at ``path``:
    the exporter's output for a tiny U-Net with ``num_classes`` classes, served
    at ``size``, its weights drawn from ``seed``; returns ``path``."""
    path = Path(path)
    source = _exported(num_classes, size, seed, width)
    manifest = Manifest.load(source)
    manifest.name, manifest.version = name, version
    write_model_version(path, manifest, {f: (source / f).read_bytes() for f in manifest.files})
    return path


def tamper(repository: Path, name: str, version: int = 1) -> None:
    """Flip one byte of the model file, after its digest was recorded."""
    f = repository / name / str(version) / "model.onnx"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))


def half_write(repository: Path, name: str, version: int = 1) -> None:
    """Remove the model file, as a copy interrupted half-way would leave it."""
    (repository / name / str(version) / "model.onnx").unlink()


def copy_model(src: Path, dst_repo: Path, name: str) -> None:
    shutil.copytree(src / name, dst_repo / name)


def sample_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (blobs, so masks have several classes)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        fy, fx, ph = rng.uniform(0.05, 0.4, 2).tolist() + [rng.uniform(0, 6.28)]
        img[..., c] = 127.5 + 120 * np.sin(fy * yy + ph) * np.cos(fx * xx)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def sample_png(height: int, width: int, seed: int = 0) -> bytes:
    return encode_png(sample_image(height, width, seed))

