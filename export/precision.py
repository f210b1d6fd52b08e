"""``seedlock export … --precision bf16|int8``: a reduced-precision model
version for the CPU fast path (OpenVINO), written only when it passes its task's
agreement gate against the fp32 export.

1. The task's fp32 version is exported as usual (torch parity and all) into a
   scratch repository.
2. bf16 keeps the fp32 graph and pins OpenVINO's bf16 inference precision;
   int8 replaces each graph by its static QDQ quantization
   (:mod:`seedlock.export.quantize`), calibrated on a seeded sample of the
   training split, recorded in the manifest (``session.calibration``).
3. The gate runs the task's answers on fp32 (ONNX Runtime, what seedlock
   serves) and on the candidate (OpenVINO), on the validation split or a seeded
   request set, and prints the agreement table. Below the gate nothing is
   written. The gates:

   ============  ===========================================================
   segmentation  ≥ 99.5 % of mask pixels equal, validation split
   fingerprints  PSNR ≥ 35 dB of the uint8 images, 64 seeded latents
   captioning    ≥ 95 % identical greedy captions, validation split
   composition   ≥ 95 % identical first 32 greedy events, validation primers
   ============  ===========================================================

   (the sequence tasks' gates and calibration sets are in
   :mod:`seedlock.export.precision_sequence`). When reducing every graph of a
   sequence model fails, only its encoder is reduced and the decoder step,
   whose rounding compounds over each token it feeds back, stays fp32 (on
   ONNX Runtime, as the fp32 export runs it).
4. The version is written with ``session.runtime = "openvino"``,
   ``session.precision`` and ``session.graphs`` (each graph's); its runtime
   reference comes from OpenVINO, so the server's ``bit_exact_with_export``
   proof compares like with like. The
   stored torch reference keeps its outputs; its tolerance becomes twice the
   export host's error on them (the task gate, not this, is the guarantee).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from seedlock.core.errors import UserError
from seedlock.core.manifest import Manifest
from seedlock.core.openvino_runtime import PRECISIONS, openvino_unavailable
from seedlock.core.rng import SeedStream
from seedlock.core.sessions import graph_sessions
from seedlock.export import precision_sequence as seq
from seedlock.export.errors import ExportError

Sessions = dict[str, Any]
CALIBRATION_SEED = 4321
CALIBRATION_SAMPLES = 32


@dataclass(frozen=True)
class Agreement:
    """One task gate's outcome: ``value`` against ``gate`` (higher is better)."""

    measure: str
    value: float
    gate: float
    cases: int
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.value >= self.gate

    def to_dict(self) -> dict[str, Any]:
        value = self.value if math.isfinite(self.value) else 999.0  # identical images: infinite PSNR
        return {"measure": self.measure, "value": round(value, 6), "gate": self.gate, "cases": self.cases,
                "passed": self.passed, "detail": self.detail}  # fmt: skip

    def table(self, precision: str, graphs: str = "all") -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{'precision':<10} {'graphs':<14} {'value':>10} {'gate':>8} {'cases':>6}  {'result':<7} measure",
                 f"{precision:<10} {graphs:<14} {self.value:>10.4f} {self.gate:>8.3f} {self.cases:>6}  {verdict:<7} {self.measure}"]  # fmt: skip
        if self.detail:
            lines.append(f"  {self.detail}")
        return "\n".join(lines)


# -- the tasks' gates and calibration sets ---------------------------------------


def _segmentation_data(manifest: Manifest, split: str) -> tuple[Any, list[np.ndarray]]:
    """The segmenter's served spec and the images of its training config's ``split``."""
    from seedlock.core.segmentation import SegmentationSpec
    from seedlock.train.data.segmentation import build_sources

    cfg = manifest.config
    spec = SegmentationSpec.from_manifest(manifest)
    try:
        train, val = build_sources(cfg["data"], int(cfg["size"]), int(cfg.get("n_train") or 0),
                                   int(cfg.get("n_val") or 0), int(cfg.get("data_seed", 0)))  # fmt: skip
    except KeyError as exc:
        raise ExportError(f"the checkpoint's config has no {exc.args[0]!r}: cannot rebuild its data splits") from None
    source = train if split == "train" else val
    if not len(source):
        raise ExportError(f"the checkpoint's {split} split is empty (config data {cfg['data']!r}): nothing to "
                          "calibrate or gate on; export in fp32")  # fmt: skip
    return spec, [source[i][0] for i in range(len(source))]


def _segmentation_calibration(manifest: Manifest, folder: str | Path, count: int, seed: int) -> tuple[dict[str, list[dict[str, np.ndarray]]], str]:
    spec, images = _segmentation_data(manifest, "train")
    order = SeedStream(seed).permutation(len(images))[:count]
    feeds = [{spec.input_name: spec.preprocess([images[int(i)]])[0]} for i in order]
    return {"model": feeds}, f"training split ({manifest.config.get('data')}), {len(feeds)} of {len(images)} images"


def _segmentation_gate(manifest: Manifest, reference: Sessions, candidate: Sessions) -> Agreement:
    spec, images = _segmentation_data(manifest, "val")
    same = total = 0
    for image in images:
        x, boxes = spec.preprocess([image])
        masks = [spec.postprocess(s["model"].run([spec.output_name], {spec.input_name: x})[0], boxes)[0]
                 for s in (reference, candidate)]  # fmt: skip
        same += int((masks[0] == masks[1]).sum())
        total += masks[0].size
    return Agreement("mask pixels equal to fp32 (validation split)", same / max(total, 1), 0.995, len(images),
                     f"{total - same} of {total} pixels differ")  # fmt: skip


GATE_LATENT_SEED, GATE_LATENTS = 777_000, 64


def _fingerprint_calibration(manifest: Manifest, folder: str | Path, count: int, seed: int) -> tuple[dict[str, list[dict[str, np.ndarray]]], str]:
    from seedlock.core.fingerprints import FingerprintSpec

    spec = FingerprintSpec.from_manifest(manifest)
    feeds = [{spec.input_name: spec.latents(seed + i, 1)} for i in range(count)]
    return {"model": feeds}, f"{count} latents drawn as requests draw them (the generator's training input)"


def _fingerprint_gate(manifest: Manifest, reference: Sessions, candidate: Sessions) -> Agreement:
    from seedlock.core.fingerprints import FingerprintSpec, to_uint8

    spec = FingerprintSpec.from_manifest(manifest)
    z = spec.latents(GATE_LATENT_SEED, GATE_LATENTS)
    a, b = (to_uint8(s["model"].run([spec.output_name], {spec.input_name: z})[0]).astype(np.float64) for s in (reference, candidate))
    mse = float(np.mean((a - b) ** 2))
    psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
    return Agreement("PSNR (dB) of uint8 images against fp32", psnr, 35.0, GATE_LATENTS,
                     f"{int((a != b).sum())} of {a.size} grey levels differ")  # fmt: skip


# (fp32 manifest, its folder, samples, seed) -> ({graph role: feeds}, where they came from)
Calibration = Callable[[Manifest, Path, int, int], tuple[dict[str, list[dict[str, np.ndarray]]], str]]
Gate = Callable[[Manifest, Sessions, Sessions], Agreement]


@dataclass(frozen=True)
class TaskGate:
    """A task's int8 calibration set and agreement gate. ``fallback``: the
    graphs reduced alone when reducing every graph fails the gate (a sequence
    model's decoder step compounds its rounding over every token it feeds
    back; its encoder runs once)."""

    calibrate: Calibration
    gate: Gate
    fallback: tuple[str, ...] = ()


GATES: dict[str, TaskGate] = {
    "segmentation": TaskGate(_segmentation_calibration, _segmentation_gate),
    "fingerprint-generation": TaskGate(_fingerprint_calibration, _fingerprint_gate),
    "captioning": TaskGate(seq.caption_calibration, seq.caption_gate, fallback=("encoder",)),
    "composition": TaskGate(seq.compose_calibration, seq.compose_gate, fallback=("encoder",)),
}


# -- the driver ----------------------------------------------------------------------


def check_precision(precision: str, task: str) -> None:
    """Refuse a precision this host or task cannot export, before the slow part."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return
    if task not in GATES:
        raise UserError(f"--precision {precision} is not available for {task} models yet (their agreement gate is not "
                        f"built); it is for: {', '.join(sorted(GATES))}. Export in fp32")  # fmt: skip
    reason = openvino_unavailable(precision)
    if reason:
        raise UserError(f"--precision {precision} needs OpenVINO on this CPU: {reason}")


def _candidate(base: Manifest, fp32_folder: Path, folder: Path, precision: str, reduced: tuple[str, ...],
               feeds: dict[str, list[dict[str, np.ndarray]]], source: str, seed: int) -> tuple[Manifest, dict[str, bytes]]:  # fmt: skip
    """The manifest and files of a version whose ``reduced`` graphs run at
    ``precision`` on OpenVINO (the rest in fp32 on ONNX Runtime, as exported),
    written into ``folder``."""
    from seedlock.export.quantize import calibration_record, quantize_int8

    files = {name: (fp32_folder / name).read_bytes() for name in base.files if not name.startswith("reference.runtime.")}
    manifest = _copy(base)
    manifest.reference.pop("runtime", None)
    graphs = {role: precision if role in reduced else "fp32" for role in sorted(base.graphs)}
    session: dict[str, Any] = {"intra_op_threads": base.intra_op_threads, "runtime": "openvino", "precision": precision,
                               "graphs": graphs}  # fmt: skip
    if precision == "int8":
        for role in reduced:
            files[base.graphs[role].file] = quantize_int8(files[base.graphs[role].file], feeds[role])
        session["calibration"] = {role: calibration_record(feeds[role], source, seed) for role in reduced}
    manifest.session = session
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return manifest, files


def export_precision(
    export_fp32: Callable[[Path], Any],
    repository: str | Path,
    precision: str,
    overwrite: bool,
    log: Callable[[str], None] = print,
    calibration_samples: int = CALIBRATION_SAMPLES,
    calibration_seed: int = CALIBRATION_SEED,
) -> Any:
    """Export through ``export_fp32(scratch_repository) -> ExportResult``, derive
    the ``precision`` version, gate it and write it into ``repository``.

    Every graph is reduced first; when that fails the gate and the task names
    a fallback, only the fallback's graphs are (the others stay fp32). Both
    tables are printed."""
    from seedlock.export.common import ExportResult
    from seedlock.export.repository import write_model_version

    with tempfile.TemporaryDirectory(prefix="seedlock-precision-") as tmp:
        fp32 = export_fp32(Path(tmp) / "fp32")
        base = fp32.manifest
        task = GATES[base.task]
        feeds: dict[str, list[dict[str, np.ndarray]]] = {}
        source = ""
        if precision == "int8":
            feeds, source = task.calibrate(base, fp32.folder, calibration_samples, calibration_seed)
            log(f"int8: calibrating on {source} (seed {calibration_seed})")
        reference = graph_sessions(base, fp32.folder)
        plans = [tuple(sorted(base.graphs))] + ([task.fallback] if task.fallback else [])
        for attempt, reduced in enumerate(plans):
            folder = Path(tmp) / f"candidate{attempt}"
            manifest, files = _candidate(base, fp32.folder, folder, precision, reduced, feeds, source, calibration_seed)
            candidate = graph_sessions(manifest, folder)
            agreement = task.gate(manifest, reference, candidate)
            log(agreement.table(precision, "all" if len(reduced) == len(base.graphs) else ", ".join(reduced)))
            if agreement.passed:
                break
            if attempt + 1 < len(plans):
                log(f"retrying with only {', '.join(plans[attempt + 1])} in {precision}, the other graphs in fp32 (ONNX Runtime)")
        else:
            raise ExportError(f"the {precision} version agrees with fp32 below the gate ({agreement.measure}"
                              + ("" if len(reduced) == len(base.graphs) else f", {', '.join(reduced)} alone") + ": "
                              f"{agreement.value:.4f} < {agreement.gate}); nothing was written. Export in fp32"
                              + (", or try bf16" if precision == "int8" else ""))  # fmt: skip
        manifest.reference["tolerance"] = _reference_tolerance(manifest, folder, candidate)
        kept = _keep_task_reference(manifest, folder, candidate)
        if kept:
            log(kept)
        manifest.metrics = {**manifest.metrics,
                            "precision_agreement": {**agreement.to_dict(), "graphs": list(reduced), "task_reference": kept}}  # fmt: skip
        out = write_model_version(repository, manifest, files, overwrite=overwrite, intra_op_threads=base.intra_op_threads)
    reduced_text = "" if len(reduced) == len(base.graphs) else f" for {', '.join(reduced)}"
    log(f"wrote {out} ({precision}{reduced_text}, OpenVINO; digest {manifest.digest[:16]}…)")
    return ExportResult(out, manifest, fp32.rows, details={"agreement": agreement})


def _copy(manifest: Manifest) -> Manifest:
    import json

    return Manifest.from_dict(json.loads(manifest.to_json()))


def _keep_task_reference(manifest: Manifest, folder: Path, sessions: Sessions) -> str:
    """Keep the fp32 export's whole-pipeline reference (a caption, a melody)
    when the candidate reproduces it exactly, as ``export verify`` will demand;
    otherwise drop it (the gate measured the difference) and say so."""
    task_ref = manifest.reference.get("task")
    if not task_ref:
        return ""
    from seedlock.core import tasks

    spec = tasks.get(manifest.task).spec_class().from_manifest(manifest)
    cases = spec.check_reference(sessions, folder, task_ref)
    differ = [case for case, want, got in cases if np.shape(want) != np.shape(got) or not np.array_equal(want, got)]
    if not differ:
        return "task reference: the fp32 answer reproduced exactly; kept for `export verify`"
    del manifest.reference["task"]
    return (f"task reference: dropped ({', '.join(differ)} differ from fp32's; the gate above measures by how much), "
            "so `export verify` checks the graphs' outputs only")


def _reference_tolerance(manifest: Manifest, folder: Path, sessions: Sessions) -> float:
    """Twice the candidate's worst error against the stored torch outputs (at
    least the fp32 tolerance): what ``export verify`` then allows."""
    worst = 0.0
    for role, entry in manifest.reference.get("graphs", {}).items():
        feeds = {t: np.load(folder / f, allow_pickle=False) for t, f in entry["inputs"].items()}
        names = sorted(entry["outputs"])
        for name, got in zip(names, sessions[role].run(names, feeds)):
            want = np.load(folder / entry["outputs"][name], allow_pickle=False)
            worst = max(worst, float(np.max(np.abs(np.asarray(got, np.float64) - want))))
    return max(float(manifest.reference.get("tolerance", 1e-4)), float(f"{2 * worst:.3g}"))
