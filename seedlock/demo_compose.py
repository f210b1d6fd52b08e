"""Demo stage for the composer: train a small genre-conditioned composer on the
music21 corpus, export it, compose in-process with ONNX Runtime, then compose
the same request through the client CLI and check the served melody is the
in-process one, event for event, and that music21 reads both files back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from seedlock.core.errors import UserError

TITLE = "genre-conditioned composer (music21 corpus)"
MODEL_NAME = "composer"
GENRE, LENGTH, SEED = "bach", 96, 7


def train_and_export(out: Path, repository: Path, steps: int | None, log: Callable[[str], None]) -> dict:
    from dataclasses import replace

    from seedlock.export.compose import export_composer
    from seedlock.serve.composition import OrtComposer
    from seedlock.train.compose_train import demo_config, train_compose

    cfg = demo_config(out=str(out / "run"))
    if steps:  # the demo's --steps caps this stage's epochs
        cfg = replace(cfg, epochs=steps)
    result = train_compose(cfg, log=log)
    test = result.metrics["test"]
    log(f"run folder: {result.folder}  (checkpoint.pt, config.json, metrics.json, pianoroll.png)")
    log(f"test top-1 error: pitch {test['top1_error_pitch']:.3f}, duration {test['top1_error_duration']:.3f}; "
        f"train time {result.metrics['seconds']:.0f}s")

    exported = export_composer(result.folder / "checkpoint.pt", repository, name=MODEL_NAME, version=1, overwrite=True, log=log)
    composer = OrtComposer.from_folder(exported.folder)
    spec = composer.spec
    if GENRE not in spec.genres:
        raise UserError(f"the demo composer has no {GENRE!r} genre (it has {', '.join(spec.genres)})")
    # What the client's request will ask for: the model's default sampling.
    events = composer.compose(GENRE, LENGTH, spec.default_sampling, SEED)
    record = {"tokens": events.tolist(), "primer": composer.primer_for(GENRE).tolist()}
    (out / "inprocess_events.json").write_text(json.dumps(record) + "\n")
    log(f"composed {LENGTH} {GENRE} events in-process (ONNX Runtime, {spec.default_sampling.strategy}, seed {SEED})")
    return {
        "run_dir": str(result.folder),
        "test_top1_error_pitch": test["top1_error_pitch"],
        "test_top1_error_duration": test["top1_error_duration"],
        "model_digest": exported.manifest.digest,
    }


def piano_roll(path: Path, primer: np.ndarray, melody: np.ndarray, title: str) -> Path:
    """One panel: the primer (grey) and the served melody. (The training run's
    ``piano_roll_png`` compares truth / greedy / sampled panels; here there is
    no truth to show.)"""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seedlock.core import music_events as me

    fig, ax = plt.subplots(figsize=(14, 4))
    t, pitches = 0.0, []
    for part, color in ((primer, "0.6"), (melody, "tab:green")):
        for midi, ql in me.to_values(part):
            if midi is not None:
                ax.add_patch(plt.Rectangle((t, midi - 0.4), ql, 0.8, color=color))
                pitches.append(midi)
            t += ql
        if part is primer:
            ax.axvline(t, color="k", lw=0.8, ls="--")
    ax.set_xlim(0, max(t, 1.0))
    ax.set_ylim(min(pitches or [48]) - 2, max(pitches or [84]) + 2)
    ax.set_xlabel("quarter notes (grey: the genre's primer; green: served melody)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def call(server: str, out: Path, client: Callable[..., str], log: Callable[[str], None]) -> dict:
    from music21 import converter

    from seedlock.core import music_events as me

    xml, mid, events_json = out / "song.musicxml", out / "song.mid", out / "served_events.json"
    client("compose", "--genre", GENRE, "--length", str(LENGTH), "--seed", str(SEED), "--out", str(xml),
           "--midi", str(mid), "--events", str(events_json), "--server", server)
    served = np.array(json.loads(events_json.read_text())["tokens"], dtype=np.int64).reshape(-1, 2)
    record = json.loads((out / "inprocess_events.json").read_text())
    expected = np.array(record["tokens"], dtype=np.int64).reshape(-1, 2)
    same = bool(np.array_equal(served, expected))
    log(f"served melody == in-process melody (seed {SEED}): {same}")
    if not same:
        raise UserError("the served melody differs from the in-process one: the seed-lock is broken")

    readable = {}
    for path in (xml, mid):
        if len(converter.parse(str(path)).recurse().notes) == 0:
            raise UserError(f"music21 read no notes back from {path}")
        readable[path.suffix] = len(me.events_from_bytes(path.read_bytes()))
    if not np.array_equal(me.events_from_bytes(xml.read_bytes()), me.merge_rests(served)):
        raise UserError(f"{xml} does not read back as the served melody")
    log(f"music21 reads both files back: {readable['.musicxml']} events from {xml.name} (== the served melody, "
        f"rests merged), {readable['.mid']} from {mid.name}")

    primer = np.array(record["primer"], dtype=np.int64).reshape(-1, 2)
    png = piano_roll(out / "song_pianoroll.png", primer, served, f"{GENRE}, {LENGTH} events, seed {SEED} (served)")
    log(f"wrote {png}")
    return {"served_equals_in_process": same, "musicxml": str(xml), "midi": str(mid), "pianoroll": str(png),
            "events_read_back": readable}
