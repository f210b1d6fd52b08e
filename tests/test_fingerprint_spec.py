"""FingerprintSpec, the fingerprint task's manifest contract (torch-free):
to_manifest/from_manifest round trip, validation with where-prefixed errors,
and the request pipeline its methods implement."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from seedlock.core.fingerprints import ALL, FingerprintSpec, latents, select_generator, to_uint8
from seedlock.core.manifest import GraphSpec, Manifest, ManifestError, TensorSpec

PER_QUALITY = FingerprintSpec(latent_dim=8, image_size=64, generators=("Q1", "Q5"), qualities=("Q1", "Q5"), max_count=12)
ALL_QUALITY = FingerprintSpec(latent_dim=8, image_size=64, generators=(ALL,), qualities=("Q1", "Q2", "Q3", "Q5"))


def manifest_of(spec: FingerprintSpec, **changes) -> Manifest:
    """The manifest the exporter writes for ``spec`` (its graph and ``to_manifest()`` sections)."""
    size = spec.image_size
    graph = GraphSpec(
        file="model.onnx",
        inputs=[TensorSpec("latent", "float32", [-1, spec.latent_dim])],
        outputs=[TensorSpec("image", "float32", [-1, len(spec.generators), size, size])],
    )
    m = Manifest(name="fp", version=3, task=FingerprintSpec.TASK, graphs={"model": graph}, **spec.to_manifest())
    return replace(m, **changes)


@pytest.mark.parametrize("spec", [PER_QUALITY, ALL_QUALITY], ids=["per-quality", "all-quality"])
def test_round_trip(spec):
    m = manifest_of(spec)
    back = FingerprintSpec.from_manifest(m)
    assert back == spec
    assert back.to_manifest() == {"preprocess": m.preprocess, "postprocess": m.postprocess, "labels": m.labels}
    # the manifest survives its own JSON too
    again = Manifest.from_dict(json.loads(m.to_json()))
    assert FingerprintSpec.from_manifest(again) == spec


def test_manifest_sections_hold_no_reference_and_describe_the_pipeline():
    sections = PER_QUALITY.to_manifest()
    assert "reference" not in sections["preprocess"] and "reference" not in sections["postprocess"]
    assert sections["labels"] == ["Q1", "Q5"] and sections["postprocess"]["generators"] == ["Q1", "Q5"]
    assert sections["postprocess"]["per_quality"] is True and sections["preprocess"]["max_count"] == 12
    assert ALL_QUALITY.to_manifest()["postprocess"]["per_quality"] is False
    assert set(ALL_QUALITY.to_manifest()["postprocess"]["quality_descriptions"]) == {"Q1", "Q2", "Q3", "Q5"}


BAD = {
    "no model graph": (lambda m: replace(m, graphs={}), "needs a 'model' graph"),
    "latent_dim missing": (lambda m: replace(m, preprocess={k: v for k, v in m.preprocess.items() if k != "latent_dim"}),
                           "preprocess needs latent_dim"),
    "input width differs from latent_dim": (lambda m: replace(m, preprocess={**m.preprocess, "latent_dim": 99}),
                                            "input 'latent' must be float32 (-1, 99)"),
    "fewer generators than the graph": (lambda m: replace(m, postprocess={**m.postprocess, "generators": ["Q1"]}, labels=["Q1"]),
                                        "output 'image' must be float32 (N, 1, 64, 64)"),
    "uniform latents": (lambda m: replace(m, preprocess={**m.preprocess, "latent_distribution": "uniform"}),
                        "latent_distribution 'uniform' is not supported"),
    "another latent stream": (lambda m: replace(m, preprocess={**m.preprocess, "latent_stream": 3}), "latent_stream 3 is not supported"),
    "another range": (lambda m: replace(m, postprocess={**m.postprocess, "range": [0, 1]}), "output range [0, 1] is not supported"),
    "generator axis": (lambda m: replace(m, postprocess={**m.postprocess, "generator_axis": 2}), "generator_axis must be 1"),
    "repeated generators": (lambda m: replace(m, postprocess={**m.postprocess, "generators": ["Q1", "Q1"]}), "bad generator names"),
    "all beside a quality": (lambda m: replace(m, postprocess={**m.postprocess, "generators": [ALL, "Q1"]}), "bad generator names"),
    "max_count 0": (lambda m: replace(m, preprocess={**m.preprocess, "max_count": 0}), "must be positive"),
    "labels differ": (lambda m: replace(m, labels=["Q5", "Q1"]), "labels ['Q5', 'Q1'] must name the generators ['Q1', 'Q5']"),
    "per_quality contradicts": (lambda m: replace(m, postprocess={**m.postprocess, "per_quality": False}), "per_quality False contradicts"),
    "generator of an untrained quality": (lambda m: replace(m, postprocess={**m.postprocess, "qualities": ["Q1", "Q2"]}),
                                          "are not all among the trained qualities"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_validation_errors_name_the_model_and_the_problem(case):
    change, message = BAD[case]
    with pytest.raises(ManifestError) as info:
        FingerprintSpec.from_manifest(change(manifest_of(PER_QUALITY)))
    text = str(info.value)
    assert text.startswith("fingerprint model 'fp' v3: "), text
    assert message in text, text


def test_request_checks():
    PER_QUALITY.check_count(12)
    with pytest.raises(ValueError, match="count must be 1 to 12 images per request for this model, got 13"):
        PER_QUALITY.check_count(13)
    assert PER_QUALITY.quality_index("Q5") == (1, "Q5")
    with pytest.raises(ValueError, match="choose a quality: Q1, Q5"):
        PER_QUALITY.quality_index("")
    with pytest.raises(ValueError, match="unknown quality 'Q2'; this model generates Q1, Q5"):
        PER_QUALITY.quality_index("Q2")
    assert ALL_QUALITY.quality_index("") == (0, ALL) and ALL_QUALITY.quality_index(ALL) == (0, ALL)
    with pytest.raises(ValueError, match="cannot generate 'Q1' alone"):
        ALL_QUALITY.quality_index("Q1")


def test_generate_is_latents_then_the_graph_then_uint8():
    """spec.generate == the documented steps written out with the core functions."""
    weights = np.linspace(-1.5, 1.5, 8, dtype=np.float32)

    def graph(z: np.ndarray) -> np.ndarray:  # a stand-in graph: any deterministic latent -> (N, 2, 64, 64) map
        base = np.tanh(z @ weights)[:, None, None, None]
        return np.broadcast_to(base * np.array([1.0, -1.0], np.float32)[None, :, None, None], (len(z), 2, 64, 64)).copy()

    got = PER_QUALITY.generate(7, 5, "Q5", graph)
    want = to_uint8(select_generator(graph(latents(7, 5, 8)), 1))
    np.testing.assert_array_equal(got, want)
    assert got.shape == (5, 64, 64) and got.dtype == np.uint8
    np.testing.assert_array_equal(PER_QUALITY.latents(7, 5), latents(7, 5, 8))
    with pytest.raises(ValueError, match="expected \\(N, 2, 64, 64\\)"):
        PER_QUALITY.postprocess(np.zeros((5, 3, 64, 64), np.float32), 0)


def test_check_reference_without_a_task_section_is_empty(tmp_path):
    assert PER_QUALITY.check_reference({}, tmp_path, {}) == []
