"""The thesis's CNN classifier (``seedlock.train.classifier``) -> ONNX, with a parity check.

Used by ``seedlock reproduce bi-activation`` to send one trained
bi-activation classifier down the product path: ``to_onnx`` (one
``ai.seedlock::BiActivation`` node per activation, defined by the model-local
function), then an ONNX Runtime session built by ``create_session`` (the
server's session settings), compared with torch on the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch.export import Dim

from seedlock.core.sessions import create_session
from seedlock.export import bi_activation_onnx as bi_onnx
from seedlock.export.common import TOLERANCE
from seedlock.export.onnx_export import count_ops, serialize, to_onnx

INPUT, OUTPUT = "image", "logits"


def export_classifier(model: torch.nn.Module, in_channels: int, image_size: int) -> bytes:
    """The classifier as deterministic ONNX bytes, batch axis dynamic."""
    example = torch.zeros(2, in_channels, image_size, image_size)
    dynamic = ({0: Dim("batch", min=1, max=65536)},)
    return serialize(to_onnx(model.eval(), (example,), [INPUT], [OUTPUT], dynamic))


@dataclass(frozen=True)
class ClassifierParity:
    """torch vs ONNX Runtime on one batch of images."""

    images: int
    max_abs_diff: float  # max |logit_torch - logit_ort|
    argmax_agreement: float  # fraction of images with the same predicted class
    bi_activation_nodes: int  # ai.seedlock::BiActivation nodes in the graph
    has_function: bool  # the model-local BiActivation function is attached
    onnx_bytes: int
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs_diff) and self.max_abs_diff <= self.tolerance and self.argmax_agreement == 1.0)


def classifier_parity(model: torch.nn.Module, model_bytes: bytes, images: np.ndarray) -> ClassifierParity:
    """Run ``images`` through torch and through an ONNX Runtime session of ``model_bytes``."""
    x = np.ascontiguousarray(images, dtype=np.float32)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    got = create_session(model_bytes).run([OUTPUT], {INPUT: x})[0]
    proto = onnx.load_from_string(model_bytes)
    diff = float(np.abs(ref.astype(np.float64) - got.astype(np.float64)).max(initial=0.0)) if ref.shape == got.shape else float("inf")
    agree = float((ref.argmax(1) == got.argmax(1)).mean()) if ref.shape == got.shape else 0.0
    return ClassifierParity(
        images=len(x),
        max_abs_diff=diff,
        argmax_agreement=agree,
        bi_activation_nodes=count_ops(proto, bi_onnx.OP_TYPE, bi_onnx.DOMAIN),
        has_function=any(f.domain == bi_onnx.DOMAIN and f.name == bi_onnx.OP_TYPE for f in proto.functions),
        onnx_bytes=len(model_bytes),
    )
