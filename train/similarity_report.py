"""Similarity reports: two sets compared, and the thesis's Table 17/18 experiment.

:func:`compare_report` compares any two sets of grey images with the four
measures of :mod:`seedlock.core.similarity` and writes ``similarity.md``,
``similarity.json``, ``mean_std_scatter.png`` and ``samples.png``.

:func:`table18` rebuilds the experiment of thesis 3.6 (Tables 17-18) on
the embedded data (or a folder of the user's held-out images) from two
trained checkpoints; :func:`run_table18` (``seedlock similarity --table18``)
writes it as ``table18.md``, and ``seedlock reproduce fingerprints`` runs it
once per GAN seed. The data
settings, with ``total`` images each (thesis: 1000) and an actual share
``actual_fraction`` (thesis: 200 of 1000):

    I    actual only                                     total actual
    II   per-quality DCGANs: total*(1-f)/Q per quality   + total*f actual
    III  all-quality DCGAN:  total*(1-f)                  + total*f actual
    IV   all-quality DCGAN:  total                        (generated only)

"Actual" images are impressions the DCGANs never saw (held-out stream
indices of the embedded data, equal numbers per quality); settings II and III
share the same actual images, which are distinct from setting I's. Every
setting is then compared with setting I over all pairs (I-I, I-II, I-III,
I-IV), as in Table 18, and the per-image mean/std scatter of Figure 34 is drawn.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from seedlock.core.errors import UserError
from seedlock.core.fingerprints import latents, tile, to_uint8
from seedlock.core.imaging import write_png
from seedlock.core.similarity import BINARIZE_THRESHOLD, binarize, compare_sets, format_table, image_stats

SETTINGS = ("I", "II", "III", "IV")
# Thesis Table 18, for side-by-side reading (its images were larger than ours: compare trends, not values).
THESIS_TABLE18 = {
    "hamming": {"I-I": 5955.69, "I-II": 6463.39, "I-III": 6446.29, "I-IV": 6550.22},
    "pearson": {"I-I": "0.682 ± 0.219", "I-II": "0.151 ± 0.272", "I-III": "0.272 ± 0.245", "I-IV": "0.180 ± 0.111"},
    "iou": {"I-I": "0.50", "I-II": "0.45", "I-III": "0.55", "I-IV": "0.53"},
}
_COLOURS = {"I": "#555555", "II": "#d95f02", "III": "#1b9e77", "IV": "#7570b3", "A": "#555555", "B": "#d95f02"}


@dataclass
class ImageSet:
    """A named set of grey images with how it was made."""

    name: str
    images: np.ndarray  # uint8 (N, S, S)
    composition: dict[str, int]  # e.g. {"actual": 200, "generated (per quality)": 800}


# --------------------------------------------------------------------------- plots and files


def _plot_scatter(path: Path, sets: list[tuple[str, np.ndarray]], reference: str | None = None) -> None:
    """Per-image mean vs std (thesis Figure 34): all sets overlaid, plus one panel per set against ``reference``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = {name: image_stats(images) for name, images in sets}
    others = [n for n, _ in sets if n != reference] if reference else []
    panels = 1 + len(others)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4), dpi=100, sharex=True, sharey=True, squeeze=False)
    ax = axes[0, 0]
    for name, (m, s) in stats.items():
        ax.scatter(m, s, s=4, alpha=0.4, color=_COLOURS.get(name), label=f"{name} (n={len(m)})")
    ax.set_title("all sets")
    for ax, name in zip(axes[0, 1:], others):
        for n in (reference, name):
            m, s = stats[n]
            ax.scatter(m, s, s=4, alpha=0.4, color=_COLOURS.get(n), label=n)
        ax.set_title(f"{reference} vs {name}")
    for ax in axes[0]:
        ax.set_xlabel("image mean (grey level)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, markerscale=3)
    axes[0, 0].set_ylabel("image standard deviation")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def samples_sheet(sets: list[tuple[str, np.ndarray]], per_set: int = 8) -> np.ndarray:
    """One row per set: ``per_set`` images spread evenly over the set (so mixed sets show both parts)."""
    rows = []
    for _, images in sets:
        idx = np.linspace(0, len(images) - 1, per_set).round().astype(int)
        rows.append(images[idx])
    return tile(np.concatenate(rows), cols=per_set)


def _measure_rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, list[str]]]:
    cols = list(results)
    readings = []
    if all("readings" in results[c] for c in cols):
        readings = [("Intersection over union counting background (mean of ink and background IoU)",
                     [f"{results[c]['readings']['iou_with_background']['mean']:.3f} ± {results[c]['readings']['iou_with_background']['std']:.3f}"
                      for c in cols])]  # fmt: skip
    return [
        ("Mean Hamming distance (pixels)", [f"{results[c]['hamming']['mean']:.2f}" for c in cols]),
        ("Mean Hamming distance (fraction of pixels)", [f"{results[c]['hamming']['mean_fraction']:.4f}" for c in cols]),
        ("Pearson correlation of histogram", [f"{results[c]['pearson']['mean']:.3f} ± {results[c]['pearson']['std']:.3f}" for c in cols]),
        ("Intersection over union", [f"{results[c]['iou']['mean']:.3f} ± {results[c]['iou']['std']:.3f}" for c in cols]),
        *readings,
        ("Image mean, average (compared set)", [f"{results[c]['mean_std']['b']['mean_of_means']:.1f}" for c in cols]),
        ("Image std, average (compared set)", [f"{results[c]['mean_std']['b']['mean_of_stds']:.1f}" for c in cols]),
        ("Mean/std centroid distance", [f"{results[c]['mean_std']['centroid_distance']:.2f}" for c in cols]),
    ]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ink_fraction(images: np.ndarray, threshold: int) -> float:
    return float(binarize(images, threshold).mean())


READING_NOTE = (
    "Reading the measures: two different prints rarely put ridges on the same pixels (low IoU), so the "
    "Hamming distance between them is close to the sum of their ink pixels; a set with less ink (smaller, "
    "fainter or greyer prints) therefore scores a *lower* mean Hamming distance to any set, itself included. "
    "Read it with the ink fraction and the image mean. The histogram correlation follows the grey levels of "
    "the background and its noise as much as the ridges."
)


def _binarization_note(threshold: int) -> str:
    return (
        f"Binarization (Hamming distance and IoU): a pixel is ink when its grey level is below {threshold} "
        f"(`ink = grey < {threshold}`, a fixed threshold for every image). IoU is taken over ink pixels; "
        "two blank images count as IoU 1. Histograms have 256 bins (one per grey level). "
        "All measures are over all pairs of the two sets, self-pairs included when a set is compared with itself."
    )


# --------------------------------------------------------------------------- two sets


def compare_report(
    a: np.ndarray,
    b: np.ndarray,
    out: str | Path,
    names: tuple[str, str] = ("A", "B"),
    sources: tuple[str, str] = ("", ""),
    threshold: int = BINARIZE_THRESHOLD,
) -> dict[str, Any]:
    """Compare two sets; write ``similarity.md``, ``similarity.json``, ``mean_std_scatter.png``, ``samples.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = compare_sets(a, b, threshold=threshold)
    label = f"{names[0]}-{names[1]}"
    _plot_scatter(out / "mean_std_scatter.png", [("A", a), ("B", b)], reference="A")
    write_png(out / "samples.png", samples_sheet([("A", a), ("B", b)]))
    ms = result["mean_std"]
    set_rows = [
        [n, src or "-", str(len(x)), f"{s['mean_of_means']:.1f} ± {s['std_of_means']:.1f}",
         f"{s['mean_of_stds']:.1f} ± {s['std_of_stds']:.1f}", f"{_ink_fraction(x, threshold):.3f}"]
        for n, src, x, s in (("A", sources[0], a, ms["a"]), ("B", sources[1], b, ms["b"]))
    ]  # fmt: skip
    md = [
        f"# Similarity: {names[0]} vs {names[1]}",
        "",
        _md_table(["set", "source", "images", "image mean", "image std", "ink fraction"], set_rows),
        "",
        f"Images are {a.shape[2]}x{a.shape[1]} grey; {result['pairs']} pairs.",
        "",
        _md_table(["measure", label], [[m, *v] for m, v in _measure_rows({label: result})]),
        "",
        "Lower Hamming distance, higher histogram correlation and higher IoU mean more similar sets.",
        "",
        READING_NOTE,
        "",
        _binarization_note(threshold),
        "",
        "![mean and standard deviation of each image](mean_std_scatter.png)",
        "",
        "![samples: row 1 set A, row 2 set B](samples.png)",
        "",
    ]
    (out / "similarity.md").write_text("\n".join(md))
    (out / "similarity.json").write_text(json.dumps({"sets": {"A": sources[0], "B": sources[1]}, "result": result}, indent=2, sort_keys=True) + "\n")
    return result


# --------------------------------------------------------------------------- Table 17 / 18


def _generated(gen: Any, z: np.ndarray, index: int) -> np.ndarray:
    from seedlock.train.fingerprint_gan import generate

    return to_uint8(generate(gen, z)[:, index])


def build_settings(
    all_quality: Any,
    each_quality: Any | None,
    actual: Callable[[str, int, int], np.ndarray],
    qualities: list[str],
    total: int = 1000,
    actual_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, ImageSet]:
    """Data settings I-IV (see the module docstring).

    ``all_quality`` / ``each_quality`` are :class:`GeneratorCheckpoint` s (the
    per-quality one may be ``None``: setting II is then left out);
    ``actual(quality, count, offset)`` returns held-out real images."""
    nq = len(qualities)
    per_q = total // nq
    n_actual_q = int(round(per_q * actual_fraction))
    n_gen_q = per_q - n_actual_q
    if per_q < 1 or n_gen_q < 1:
        raise UserError(f"total {total} is too small for {nq} qualities with actual fraction {actual_fraction}")
    zdim = all_quality.model_config.latent_dim
    set_i = np.concatenate([actual(q, per_q, 0) for q in qualities])
    mixed_actual = np.concatenate([actual(q, n_actual_q, per_q) for q in qualities]) if n_actual_q else np.zeros((0,) + set_i.shape[1:], np.uint8)
    settings = {"I": ImageSet("I", set_i, {"actual": len(set_i)})}
    if each_quality is not None:
        missing = [q for q in qualities if q not in each_quality.generators]
        if missing:
            raise UserError(f"the per-quality model has no generator for {', '.join(missing)} (it has {', '.join(each_quality.generators)})")
        gen_ii = []
        for k, q in enumerate(qualities):
            z = latents(seed + 10 + k, n_gen_q, each_quality.model_config.latent_dim)
            gen_ii.append(_generated(each_quality.generator, z, each_quality.generators.index(q)))
        gen_ii_all = np.concatenate(gen_ii)
        settings["II"] = ImageSet("II", np.concatenate([gen_ii_all, mixed_actual]),
                                  {"generated (per-quality DCGANs)": len(gen_ii_all), "actual": len(mixed_actual)})  # fmt: skip
    gen_iii = _generated(all_quality.generator, latents(seed + 20, n_gen_q * nq, zdim), 0)
    settings["III"] = ImageSet("III", np.concatenate([gen_iii, mixed_actual]),
                               {"generated (all-quality DCGAN)": len(gen_iii), "actual": len(mixed_actual)})  # fmt: skip
    gen_iv = _generated(all_quality.generator, latents(seed + 30, per_q * nq, zdim), 0)
    settings["IV"] = ImageSet("IV", gen_iv, {"generated (all-quality DCGAN)": len(gen_iv)})
    return settings


def _check_generators(ckpt: Any, want_per_quality: bool, flag: str) -> None:
    if ckpt.per_quality != want_per_quality:
        kind = "per-quality (--mode each)" if want_per_quality else "all-quality (--mode all)"
        raise UserError(f"{flag} needs a {kind} checkpoint; {ckpt.path} was trained with --mode {ckpt.mode}")


@dataclass
class Table18Run:
    """Settings I-IV built from two checkpoints and each compared with setting I (no files written)."""

    settings: dict[str, ImageSet]
    results: dict[str, dict[str, Any]]  # "I-I", "I-II", ... -> compare_sets(..., with_readings=True)
    report: dict[str, Any]  # what table18.json holds
    all_quality: Any  # GeneratorCheckpoint
    each_quality: Any | None


@functools.lru_cache(maxsize=16)
def _embedded_actual(data_seed: int, quality: str, count: int, size: int, offset: int) -> np.ndarray:
    """Held-out embedded impressions, read-only and cached: several runs in one process (GAN seeds) share them."""
    from seedlock.train.fingerprint_gan import embedded_heldout

    images = embedded_heldout(data_seed, quality, count, size, offset)
    images.setflags(write=False)
    return images


def table18(
    all_quality: str | Path,
    each_quality: str | Path | None,
    actual_folder: str | Path | None = None,
    total: int = 1000,
    actual_fraction: float = 0.2,
    seed: int = 0,
    threshold: int = BINARIZE_THRESHOLD,
    log: Callable[[str], None] = print,
) -> Table18Run:
    """The Table 17/18 experiment from trained checkpoints (run folders or ``checkpoint.pt``):
    data settings I-IV (:func:`build_settings`; ``seed`` keys the generation latents) and every
    setting compared with setting I by :func:`~seedlock.core.similarity.compare_sets`, thesis
    readings included. Shared by :func:`run_table18` (``seedlock similarity --table18``) and
    ``seedlock reproduce fingerprints``."""
    from seedlock.train.fingerprint_gan import EMBEDDED, load_generator_checkpoint

    g_all = load_generator_checkpoint(all_quality)
    _check_generators(g_all, False, "--all-quality")
    g_each = None
    if each_quality is not None:
        g_each = load_generator_checkpoint(each_quality)
        _check_generators(g_each, True, "--each-quality")
        if g_each.model_config.image_size != g_all.model_config.image_size:
            raise UserError("the two models generate different image sizes; train both with the same --size")
    size = g_all.model_config.image_size
    qualities = list(g_all.qualities)
    if g_each is not None:  # fail before building any data
        missing = [q for q in qualities if q not in g_each.generators]
        if missing:
            raise UserError(f"the per-quality model has no generator for {', '.join(missing)} (it has {', '.join(g_each.generators)})")
    if actual_folder is None:
        if g_all.config.get("data", EMBEDDED) != EMBEDDED:
            raise UserError("the model was trained on a folder: pass --actual DIR with held-out images in quality subfolders")
        data_seed = int(g_all.config.get("data_seed", 0))

        def actual(q: str, count: int, offset: int) -> np.ndarray:
            return _embedded_actual(data_seed, q, count, size, offset)

        actual_source = f"embedded impressions (data seed {data_seed}, held-out indices)"
    else:
        from seedlock.train.data.fingerprint_folder import load_quality_folder

        folder = load_quality_folder(actual_folder, size, qualities)

        def actual(q: str, count: int, offset: int) -> np.ndarray:
            have = folder.images[q]
            if len(have) < offset + count:
                raise UserError(f"{actual_folder}/{q} has {len(have)} images; settings I-III need {offset + count} per quality (lower --total)")
            return have[offset : offset + count]

        actual_source = f"{actual_folder} (held out by the user)"

    log(f"building data settings I-IV ({total} images each, {size}x{size})")
    settings = build_settings(g_all, g_each, actual, qualities, total, actual_fraction, seed)
    ref = settings["I"].images
    results = {f"I-{name}": compare_sets(ref, s.images, threshold=threshold, with_readings=True) for name, s in settings.items()}
    report = {
        "total": total,
        "actual_fraction": actual_fraction,
        "image_size": size,
        "qualities": qualities,
        "actual_source": actual_source,
        "models": {"all_quality": str(g_all.path), "each_quality": str(g_each.path) if g_each else None},
        "settings": {n: s.composition for n, s in settings.items()},
        "ink_fraction": {n: _ink_fraction(s.images, threshold) for n, s in settings.items()},
        "results": results,
        "binarization_threshold": threshold,
    }
    return Table18Run(settings, results, report, g_all, g_each)


def run_table18(
    all_quality: str | Path,
    each_quality: str | Path | None,
    out: str | Path,
    actual_folder: str | Path | None = None,
    total: int = 1000,
    actual_fraction: float = 0.2,
    seed: int = 0,
    threshold: int = BINARIZE_THRESHOLD,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The Table 17/18 experiment from trained checkpoints (:func:`table18`); writes ``table18.md``,
    ``table18.json``, ``mean_std_scatter.png`` and ``settings_samples.png`` into ``out``. Returns the JSON dict."""
    run = table18(all_quality, each_quality, actual_folder, total, actual_fraction, seed, threshold, log)
    settings, report = run.settings, run.report
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _plot_scatter(out / "mean_std_scatter.png", [(n, s.images) for n, s in settings.items()], reference="I")
    write_png(out / "settings_samples.png", samples_sheet([(n, s.images) for n, s in settings.items()]))
    (out / "table18.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "table18.md").write_text(_table18_markdown(report, settings, run.all_quality, run.each_quality))
    log(format_table(run.results))
    log(f"wrote {out / 'table18.md'}")
    return report


def _table18_markdown(report: dict[str, Any], settings: dict[str, ImageSet], g_all: Any, g_each: Any | None) -> str:
    results = report["results"]
    cols = list(results)
    comp_rows = []
    train_counts = g_all.config.get("n_per_quality") or 600
    for name, s in settings.items():
        trained = "0"
        if name == "II":
            trained = f"{g_each.config.get('n_per_quality') or 600}×{len(report['qualities'])} (one DCGAN per quality)"
        elif name in ("III", "IV"):
            trained = f"{train_counts * len(report['qualities'])} (one DCGAN, all qualities)"
        generated = sum(v for k, v in s.composition.items() if k.startswith("generated"))
        ink = report["ink_fraction"][name]
        comp_rows.append([name, trained, str(generated), str(s.composition.get("actual", 0)), str(len(s.images)), f"{ink:.3f}"])
    thesis_rows = [
        ["Mean Hamming distance (thesis)", *[f"{THESIS_TABLE18['hamming'].get(c, '-')}" for c in cols]],
        ["Pearson correlation of histogram (thesis)", *[f"{THESIS_TABLE18['pearson'].get(c, '-')}" for c in cols]],
        ["Intersection over union (thesis)", *[f"{THESIS_TABLE18['iou'].get(c, '-')}" for c in cols]],
    ]
    ham = {c: results[c]["hamming"]["mean"] for c in cols}
    closest = min((c for c in cols if c != "I-I"), key=lambda c: ham[c], default=None)
    md = [
        "# Similarity of generated and actual fake fingerprints (thesis Tables 17-18)",
        "",
        f"Actual images: {report['actual_source']}. Images are {report['image_size']}x{report['image_size']} grey, "
        f"qualities {', '.join(report['qualities'])}.",
        "",
        "## Data settings (Table 17)",
        "",
        _md_table(["setting", "DCGAN trained on", "generated", "actual", "total", "ink fraction"], comp_rows),
        "",
        "## Similarity to setting I (Table 18)",
        "",
        _md_table(["measure", *cols], [[m, *v] for m, v in _measure_rows(results)]),
        "",
        "Lower Hamming distance, higher histogram correlation and higher IoU mean closer to the actual images. "
        + (f"Among the settings with generated images, {closest} has the lowest mean Hamming distance to I; "
           "check its ink fraction (Table 17 above) before reading that as closeness." if closest else ""),
        "",
        READING_NOTE,
        "",
        "For reading alongside, the thesis's own values (larger images of real fake fingerprints, so the magnitudes differ):",
        "",
        _md_table(["measure", *cols], thesis_rows),
        "",
        _binarization_note(report["binarization_threshold"]),
        "",
        "## Mean and standard deviation of each image (Figure 34)",
        "",
        "![mean and standard deviation per image](mean_std_scatter.png)",
        "",
        "## Samples (one row per setting, I to IV; mixed settings show generated then actual images)",
        "",
        "![samples per setting](settings_samples.png)",
        "",
    ]
    return "\n".join(md)


def demo_table18(out: str | Path, log: Callable[[str], None] = print, **overrides: Any) -> dict[str, Any]:
    """Train the demo all-quality and per-quality DCGANs (the same steps per DCGAN)
    into ``out/all`` and ``out/each``, then run the Table 17/18 experiment into ``out``.
    Five DCGANs of the demo size: about 10-15 minutes on 2 CPU cores."""
    from seedlock.train.fingerprint_gan import demo_config, train_fingerprint_gan

    out = Path(out)
    all_dir = train_fingerprint_gan(demo_config(out=str(out / "all"), mode="all", **overrides), log=log)
    each_dir = train_fingerprint_gan(demo_config(out=str(out / "each"), mode="each", **overrides), log=log)
    return run_table18(all_dir, each_dir, out, log=log)
