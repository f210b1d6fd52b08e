"""Small real segmentation models for the serving tests (no torch needed).

``make_segmenter_repository`` writes a fully-convolutional ONNX segmenter
(Conv 3x3 -> Relu -> Conv 1x1, seeded weights, dynamic batch/H/W, opset 18)
into a Triton-style repository with the manifest the segmentation task
service reads, exactly as the exporter writes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from seedlock.core.imaging import encode_png
from seedlock.core.manifest import GraphSpec, Manifest, TensorSpec
from seedlock.export.repository import write_model_version

MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]


def segmenter_onnx(num_classes: int = 4, seed: int = 0, width: int = 8) -> bytes:
    """Serialized ONNX: image (N,3,H,W) float32 -> logits (N,K,H,W) float32."""
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
        "tiny_segmenter",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes, "height", "width"])],
        initializer=[numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="seedlock-tests")
    model.ir_version = 8  # opset 18's IR version; any ONNX Runtime >= 1.14 loads it
    onnx.checker.check_model(model)
    return model.SerializeToString()


def segmenter_manifest(name: str, num_classes: int, size: int, seed: int, version: int = 1) -> Manifest:
    return Manifest(
        name=name,
        version=version,
        task="segmentation",
        graphs={
            "model": GraphSpec(
                file="model.onnx",
                inputs=[TensorSpec("image", "float32", [-1, 3, -1, -1])],
                outputs=[TensorSpec("logits", "float32", [-1, num_classes, -1, -1])],
            )
        },
        preprocess={"size": size, "mean": MEAN, "std": STD, "divisor": 1, "resize": "letterbox"},
        postprocess={"argmax_axis": 1},
        labels=["background"] + [f"class{i}" for i in range(1, num_classes)],
        seed=seed,
        config={"note": "serving test model"},
        tools={"onnx": onnx.__version__},
    )


def make_segmenter_repository(
    path: str | Path,
    name: str = "segmenter",
    num_classes: int = 4,
    size: int = 32,
    seed: int = 0,
    version: int = 1,
    width: int = 8,
) -> Path:
    """Write model ``name`` version ``version`` into the repository at ``path``; returns ``path``."""
    path = Path(path)
    manifest = segmenter_manifest(name, num_classes, size, seed, version)
    write_model_version(path, manifest, {"model.onnx": segmenter_onnx(num_classes, seed, width)})
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

