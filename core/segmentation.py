"""The segmentation task's contract: its manifest spec and its one
pre/post-processing chain, used by the export check, the demo, the server and
the training-side predictor alike.

    image (H, W, 3) uint8 --letterbox(size)--> normalize(mean, std) --> model
    logits (N, K, S, S) --argmax (first max wins)--> mask (S, S) --unletterbox--> (H, W)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from seedlock.core.imaging import Letterbox, letterbox, normalize, unletterbox_mask
from seedlock.core.manifest import Manifest, ManifestError


@dataclass(frozen=True)
class SegmentationSpec:
    """What a segmentation model version promises: its letterbox size and
    normalization, its class labels and the names of its one graph's tensors."""

    TASK: ClassVar[str] = "segmentation"

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    labels: tuple[str, ...]
    divisor: int = 1  # H and W of a raw input must be multiples of this (2**depth)
    input_name: str = "image"
    output_name: str = "logits"

    def __post_init__(self) -> None:
        if self.size <= 0 or len(self.mean) != 3 or len(self.std) != 3 or 0.0 in self.std:
            raise ValueError(f"bad preprocess: size {self.size}, mean {list(self.mean)}, std {list(self.std)}")
        if self.divisor < 1 or self.size % self.divisor:
            raise ValueError(f"size {self.size} is not a multiple of the model's divisor {self.divisor}")
        if not 1 <= len(self.labels) <= 256:
            raise ValueError(f"needs 1 to 256 labels for an 8-bit mask, has {len(self.labels)}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    # -- the manifest -------------------------------------------------------
    def to_manifest(self) -> dict[str, Any]:
        return {
            "preprocess": {"size": self.size, "mean": list(self.mean), "std": list(self.std),
                           "divisor": self.divisor, "resize": "letterbox"},
            "postprocess": {"argmax_axis": 1},
            "labels": list(self.labels),
        }  # fmt: skip

    @classmethod
    def from_manifest(cls, m: Manifest) -> "SegmentationSpec":
        where = f"segmentation model {m.name!r} v{m.version}"
        graph = m.graphs.get("model")
        if graph is None or len(graph.inputs) != 1 or not graph.outputs:
            raise ManifestError(f"{where}: needs a 'model' graph with one input and a logits output")
        inp, out = graph.inputs[0], graph.outputs[0]
        if inp.dtype != "float32" or len(inp.shape) != 4 or inp.shape[1] not in (3, -1):
            raise ManifestError(f"{where}: input {inp.name!r} must be float32 (N, 3, H, W), is {inp.dtype} {inp.shape}")
        if len(out.shape) != 4:
            raise ManifestError(f"{where}: output {out.name!r} must be (N, classes, H, W), is {out.shape}")
        pre, post = m.preprocess, m.postprocess
        if pre.get("resize", "letterbox") != "letterbox":
            raise ManifestError(f"{where}: resize {pre.get('resize')!r} is not supported (letterbox only)")
        if int(post.get("argmax_axis", 1)) != 1:
            raise ManifestError(f"{where}: argmax_axis must be 1 (the class axis of NCHW logits)")
        try:
            spec = cls(
                size=int(pre["size"]), mean=tuple(float(v) for v in pre["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in pre["std"]), labels=tuple(str(label) for label in m.labels),  # type: ignore[arg-type]
                divisor=int(pre.get("divisor", 1) or 1), input_name=inp.name, output_name=out.name,
            )  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"{where}: preprocess needs size, mean and std ({exc!r})") from None
        except ValueError as exc:
            raise ManifestError(f"{where}: {exc}") from None
        if out.shape[1] not in (-1, spec.num_classes):
            raise ManifestError(f"{where}: logits have {out.shape[1]} classes but there are {spec.num_classes} labels")
        return spec

    def with_size(self, size: int) -> "SegmentationSpec":
        """The same model served at another letterbox size (the U-Net is fully convolutional)."""
        return SegmentationSpec(size, self.mean, self.std, self.labels, self.divisor, self.input_name, self.output_name)

    # -- pre/post-processing -------------------------------------------------
    def preprocess(self, images: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        """RGB uint8 image(s) of any size -> (float32 (N, 3, S, S) model input, how to undo each letterbox).
        ``images``: one (H, W, 3) image, an (N, H, W, 3) batch or a list of images."""
        batch = [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)
        for img in batch:
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"expected RGB uint8 (H, W, 3) images, got {img.dtype} {img.shape}")
        boxed, boxes = zip(*(letterbox(img, self.size) for img in batch))
        return normalize(np.stack(boxed), list(self.mean), list(self.std)), list(boxes)

    def postprocess(self, logits: np.ndarray, boxes: Sequence[Letterbox]) -> list[np.ndarray]:
        """(N, K, S, S) logits -> one uint8 (H, W) class mask per image, at its original size."""
        if logits.ndim != 4 or logits.shape[0] != len(boxes) or logits.shape[1] != self.num_classes:
            raise ValueError(f"expected logits of shape ({len(boxes)}, {self.num_classes}, S, S), got {logits.shape}")
        small = np.argmax(logits, axis=1).astype(np.uint8)  # ties: the first class wins
        return [unletterbox_mask(m, b) for m, b in zip(small, boxes)]

    def segment(self, image: np.ndarray, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Mask for one image, given ``run(x) -> logits`` (an ONNX Runtime session, a torch model…)."""
        x, boxes = self.preprocess(image)
        return self.postprocess(run(x), boxes)[0]

    def check_reference(self, sessions: Mapping[str, Any], folder: Path, reference: dict[str, Any]) -> list:
        return []  # the graph-level reference is the whole contract: nothing is decoded


def class_counts(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels per class, int64 ``(num_classes,)``."""
    return np.bincount(mask.ravel(), minlength=num_classes)[:num_classes].astype(np.int64)
