"""Demo stage for the captioner: train on embedded scenes, export, caption
held-out scenes in-process, then caption them through the server with the
client CLI, print the captions beside the references with corpus BLEU, and
check the served captions equal the in-process ones, log-probabilities included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from seedlock.core.errors import UserError

TITLE = "image-caption generator (CNN encoder + LSTM decoder, beam search)"
MODEL_NAME = "captioner"
SCENES = 4
BEAM, N, MAX_LENGTH = 3, 3, 20
# Scenes past every train/val index: never seen in training or validation.
HELDOUT_OFFSET = 1_000_000


def _scene_path(out: Path, i: int) -> Path:
    return out / f"heldout_{i}.png"


def train_and_export(out: Path, repository: Path, steps: int | None, log: Callable[[str], None]) -> dict:
    from seedlock.core.imaging import write_png
    from seedlock.core.sessions import SessionConfig, default_threads, resolve_providers
    from seedlock.export.caption import export_captioner
    from seedlock.serve.captioning import load_captioner
    from seedlock.train.caption_train import demo_config, train_captioner
    from seedlock.train.data.caption_scenes import VAL_OFFSET, make_caption_scene

    cfg = demo_config(out=str(out / "run"), **({"steps": steps} if steps else {}))
    metrics = train_captioner(cfg, log=log)
    run_dir = Path(cfg.out)
    log(f"run folder: {run_dir}  (checkpoint.pt, config.json, metrics.json, vocab.json)")
    result = export_captioner(run_dir / "checkpoint.pt", repository, name=MODEL_NAME, version=1, overwrite=True, log=log)

    # In process, on the server's code with the settings `seedlock serve` uses by default.
    config = SessionConfig(providers=tuple(resolve_providers()), intra_op_threads=default_threads())
    captioner = load_captioner(repository, MODEL_NAME, 1, config)
    scenes = []
    for i in range(SCENES):
        image, references = make_caption_scene(cfg.data_seed, VAL_OFFSET + HELDOUT_OFFSET + i, cfg.size)
        write_png(_scene_path(out, i), image)
        answer = captioner.caption_bytes(_scene_path(out, i).read_bytes(), beam=BEAM, max_length=MAX_LENGTH, n=N)
        scenes.append({
            "image": _scene_path(out, i).name,
            "references": references,
            "captions": [{"text": t, "tokens": list(c.tokens), "log_prob": c.log_prob, "finished": c.finished}
                         for c, t in zip(answer.captions, answer.texts)],
        })  # fmt: skip
    (out / "heldout_inprocess.json").write_text(json.dumps(scenes, indent=2) + "\n")
    log(f"captioned {SCENES} held-out scenes in process (ONNX Runtime, beam {BEAM}); wrote {out / 'heldout_inprocess.json'}")
    return {
        "run_dir": str(run_dir),
        "val_bleu_greedy": metrics["greedy"],
        "val_bleu_beam": metrics["beam"],
        "model_digest": result.manifest.digest,
    }


def call(server: str, out: Path, client: Callable[..., str], log: Callable[[str], None]) -> dict:
    from seedlock.core.bleu import corpus_bleu
    from seedlock.core.vocab import tokenize

    expected = json.loads((out / "heldout_inprocess.json").read_text())
    served = []
    for i, scene in enumerate(expected):
        answer_path = out / f"served_{i}.json"
        client("caption", str(out / scene["image"]), "--beam", str(BEAM), "--n", str(N), "--max-length", str(MAX_LENGTH),
               "--server", server, "--json", str(answer_path))
        served.append(json.loads(answer_path.read_text())["captions"])

    log("")
    for scene, captions in zip(expected, served):
        log(f"{scene['image']}")
        log(f"  served (beam {BEAM}): {captions[0]['text']!r}  (log-prob {captions[0]['log_prob']:.3f})")
        for ref in scene["references"]:
            log(f"  reference:        {ref!r}")
    bleu = corpus_bleu([[tokenize(r) for r in s["references"]] for s in expected], [tokenize(c[0]["text"]) for c in served])
    log("served captions, corpus BLEU-1..4 against the 5 references: "
        + "  ".join(f"{bleu[f'bleu{k}']:.3f}" for k in range(1, 5)))

    def key(captions: list[dict]) -> list[tuple]:
        return [(c["text"], list(c["tokens"]), c["log_prob"], c["finished"]) for c in captions]

    same = all(key(s) == key(e["captions"]) for s, e in zip(served, expected))
    log(f"served captions == in-process captions (words, tokens and log-probabilities): {same}")
    if not same:
        raise UserError("the served captions differ from the in-process ones: the seed-lock is broken")
    return {
        "served_captions": [c[0]["text"] for c in served],
        "served_bleu": {f"bleu{k}": bleu[f"bleu{k}"] for k in range(1, 5)},
        "served_captions_match_in_process": same,
    }
