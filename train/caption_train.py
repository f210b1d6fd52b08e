"""Train the image-caption generator (thesis 4.2), seed-locked, and compare its modules.

``train_captioner(cfg)`` writes into ``cfg.out``:

    checkpoint.pt    weights + vocabulary (``labels``) + everything export needs
    config.json      the resolved CaptionConfig (feed it back with --config)
    vocab.json       the vocabulary (also inside the checkpoint)
    metrics.json     per-epoch loss, BLEU-1..4 greedy and beam, next-word accuracy, examples

``run_grid(cfg, seeds=...)`` trains one model per module variant of Tables 27-30
and model seed, with the same data and step budget; ``run_ablation(cfg)`` (the
CLI's ``--ablation``) writes it as ``ablation.md`` / ``ablation.json``, and
``seedlock reproduce captioning`` sets it beside the thesis's tables.

Determinism: the seed seeds a ``torch.Generator`` for the weight init and
another for the data order; deterministic algorithms are on; the embedded
scenes come from their own ``data_seed``. Same config + seed + thread count on
the same machine -> bit-identical weights.

Batches are groups of images with *all* their reference captions: each image
goes through the CNN once per step, however many captions it has.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from seedlock.core.bleu import corpus_bleu
from seedlock.core.caption_decoding import MAX_BEAM, MAX_LENGTH
from seedlock.core.errors import UserError
from seedlock.core.imaging import normalize
from seedlock.core.rng import SeedStream
from seedlock.core.vocab import PAD_ID, Vocabulary, tokenize
from seedlock.train.captioner import (
    CELLS,
    DIRECTIONS,
    EMBEDDINGS,
    ENCODERS,
    INITS,
    Captioner,
    CaptionerConfig,
    load_encoder_weights,
    load_glove,
    torch_graphs,
)  # fmt: skip
from seedlock.train.checkpoint import CHECKPOINT_NAME, save_checkpoint
from seedlock.train.config import ConfigFile, is_int, need
from seedlock.train.determinism import deterministic

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SCENE_DEFAULTS = {"n_train": 1200, "n_val": 100}
TASK = "captioning"


@dataclass
class CaptionConfig(ConfigFile):
    """Every option of a captioning run; field names are the CLI flags (``_`` -> ``-``).

    The defaults are the calibrated demo (:func:`demo_config`): 64 px scenes,
    ResNet-style CNN, LSTM merge decoder, learned embedding, no attention.
    """

    KIND = "caption"

    # data
    data: str = "scenes"  # "scenes" (embedded) or a Flickr8k token file / COCO captions JSON
    images: str | None = None  # image folder for a caption file (default: next to it)
    split: str | None = None  # Flickr8k split file naming the training images
    data_seed: int = 0
    size: int = 64
    n_train: int | None = None  # scenes: 1200; file: all but the validation images (or a cap)
    n_val: int | None = None  # scenes: 100; file: 10% (at most 1000)
    min_count: int = 2  # vocabulary frequency threshold
    max_words: int = 20  # training captions are cut to this many words
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    # model: the thesis's five modules
    encoder: str = "resnet"
    width: int = 12
    cell: str = "lstm"
    direction: str = "vanilla"
    embedding: str = "learned"
    glove: str | None = None  # GloVe text file, for embedding=glove
    glove_trainable: bool = False
    embed_dim: int = 64
    hidden: int = 96
    attention: bool = False
    init: str = "lecun-uniform"
    dropout: float = 0.1
    encoder_weights: str | None = None  # user-supplied CNN weights (state dict)
    freeze_encoder: bool = False
    # optimization
    lr: float = 3e-3
    batch_size: int = 12  # images per step (each with all its captions)
    epochs: int = 10
    steps: int | None = 400  # total optimizer steps; overrides epochs when set
    seed: int = 777
    # evaluation
    beam: int = 3
    max_length: int = 20
    # run
    out: str = "runs/caption"
    threads: int | None = None
    progress: bool = True

    def validate(self) -> None:
        for name in ("size", "width", "embed_dim", "hidden", "batch_size", "epochs", "min_count", "max_words", "beam", "max_length"):
            v = getattr(self, name)
            need(is_int(v) and v >= 1, f"{name} must be a positive integer, got {v!r}")
        for name in ("n_train", "n_val", "steps", "threads"):
            v = getattr(self, name)
            need(v is None or (is_int(v) and v >= 1), f"{name} must be a positive integer, got {v!r}")
        for name in ("seed", "data_seed"):
            v = getattr(self, name)
            need(is_int(v) and v >= 0, f"{name} must be a non-negative integer, got {v!r}")
        for name, allowed in (("encoder", ENCODERS), ("cell", CELLS), ("direction", DIRECTIONS), ("embedding", EMBEDDINGS), ("init", INITS)):
            need(getattr(self, name) in allowed, f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        need(self.embedding != "glove" or bool(self.glove), "embedding glove needs a GloVe text file: pass --glove FILE")
        need(self.size % 8 == 0 and self.size >= 32, f"size must be a multiple of 8 and at least 32, got {self.size}")
        need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0, f"lr must be a positive number, got {self.lr!r}")
        need(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout!r}")
        need(self.beam <= MAX_BEAM, f"beam must be at most {MAX_BEAM}, got {self.beam}")
        need(self.max_length <= MAX_LENGTH, f"max_length must be at most {MAX_LENGTH}, got {self.max_length}")
        need(len(self.mean) == 3 and len(self.std) == 3 and all(s > 0 for s in self.std), "mean and std need 3 values (R, G, B), std > 0")

    def model_config(self, vocab_size: int) -> CaptionerConfig:
        return CaptionerConfig(
            vocab_size=vocab_size, image_size=self.size, encoder=self.encoder, width=self.width, cell=self.cell,
            direction=self.direction, embedding=self.embedding, embed_dim=self.embed_dim, hidden=self.hidden,
            attention=bool(self.attention), init=self.init, dropout=float(self.dropout),
        )  # fmt: skip

    def preprocess(self) -> dict[str, Any]:
        return {"size": self.size, "mean": list(map(float, self.mean)), "std": list(map(float, self.std)), "resize": "letterbox"}


def demo_config(out: str = "runs/caption", **overrides: Any) -> CaptionConfig:
    """The calibrated demo (the defaults): 1200 scenes of 64 px, 400 steps of 12 images x 5 captions
    (about 2-3 minutes on 2 free CPU cores)."""
    return CaptionConfig(out=out, **overrides)


# --------------------------------------------------------------------------- data


@dataclass
class CaptionData:
    train_images: np.ndarray  # uint8 (N, S, S, 3)
    train_captions: list[list[str]]
    val_images: np.ndarray
    val_captions: list[list[str]]
    vocab: Vocabulary


def folder_split(count: int, cfg: CaptionConfig) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, validation) indices of a caption folder of ``count``
    images: a ``data_seed`` permutation, ``n_val`` (default a tenth, at most
    1000) for validation, the rest (at most ``n_train``) for training."""
    order = SeedStream(cfg.data_seed).permutation(count)
    n_val = min(cfg.n_val or max(1, min(1000, count // 10)), count - 1)
    val, train = order[:n_val], order[n_val:]
    if cfg.n_train:
        train = train[: cfg.n_train]
    return np.sort(train), np.sort(val)


def load_data(cfg: CaptionConfig) -> CaptionData:
    if cfg.data == "scenes":
        from seedlock.train.data.caption_scenes import VAL_OFFSET, caption_scenes

        n_train = cfg.n_train or SCENE_DEFAULTS["n_train"]
        n_val = cfg.n_val or SCENE_DEFAULTS["n_val"]
        tr_img, tr_cap = caption_scenes(cfg.data_seed, n_train, cfg.size)
        va_img, va_cap = caption_scenes(cfg.data_seed, n_val, cfg.size, offset=VAL_OFFSET)
    else:
        from seedlock.train.data.caption_folders import load_caption_file, load_images

        corpus = load_caption_file(cfg.data, cfg.images, cfg.split)
        if len(corpus) < 2:
            raise UserError(f"{cfg.data}: need at least 2 captioned images (one for validation), found {len(corpus)}")
        train, val = folder_split(len(corpus), cfg)
        tr, va = corpus.subset(train), corpus.subset(val)
        tr_img, tr_cap = load_images(tr, cfg.size), tr.captions
        va_img, va_cap = load_images(va, cfg.size), va.captions
    vocab = Vocabulary.build((c for caps in tr_cap for c in caps), cfg.min_count)
    return CaptionData(tr_img, tr_cap, va_img, va_cap, vocab)


def encode_captions(captions: list[list[str]], vocab: Vocabulary, max_words: int) -> tuple[np.ndarray, np.ndarray]:
    """All captions as padded ids ``<start> w.. <end> <pad>..`` (int64 ``(C, L)``) and the image of each (``(C,)``)."""
    rows, owner = [], []
    for i, caps in enumerate(captions):
        for c in caps:
            rows.append(vocab.encode(tokenize(c)[:max_words]))
            owner.append(i)
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), PAD_ID, dtype=np.int64)
    for k, r in enumerate(rows):
        ids[k, : len(r)] = r
    return ids, np.asarray(owner, dtype=np.int64)


class _Batches:
    """Seeded image batches with all their captions; equal-size batches (the last partial one is dropped)."""

    def __init__(self, images: torch.Tensor, ids: np.ndarray, owner: np.ndarray, batch_size: int, seed: int) -> None:
        self.images, self.ids = images, torch.from_numpy(ids)
        self.rows_of = [np.flatnonzero(owner == i) for i in range(len(images))]
        self.batch_size = min(batch_size, len(images))
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(len(self.images), generator=self.gen).numpy()
        for b in range(len(self)):
            imgs = perm[b * self.batch_size : (b + 1) * self.batch_size]
            rows = np.concatenate([self.rows_of[i] for i in imgs])
            which = np.concatenate([np.full(len(self.rows_of[i]), k) for k, i in enumerate(imgs)])
            ids = self.ids[rows]
            ids = ids[:, : int((ids != PAD_ID).sum(1).max())]  # trim shared padding
            yield self.images[imgs], ids, torch.from_numpy(which)


# --------------------------------------------------------------------------- runtime


def build_model(cfg: CaptionConfig, vocab: Vocabulary, seed: int, log: Callable[[str], None] = print) -> Captioner:
    """A fresh captioner: seeded init, then GloVe rows and user CNN weights when asked."""
    model = Captioner(cfg.model_config(len(vocab)))
    gen = torch.Generator().manual_seed(seed)
    model.reset_parameters(cfg.init, gen)
    if cfg.embedding == "glove":
        vectors, found = load_glove(cfg.glove, vocab, cfg.embed_dim)
        with torch.no_grad():
            have = vectors.abs().sum(1) > 0
            model.embed.weight[have] = vectors[have]
        model.embed.weight.requires_grad_(bool(cfg.glove_trainable))
        log(f"GloVe: {found} of {len(vocab)} vocabulary words found in {cfg.glove} ({'trainable' if cfg.glove_trainable else 'frozen'})")
    if cfg.encoder_weights:
        load_encoder_weights(model, cfg.encoder_weights)
        log(f"loaded encoder weights from {cfg.encoder_weights}")
    if cfg.freeze_encoder:
        model.cnn.requires_grad_(False)
    return model


# --------------------------------------------------------------------------- evaluation


def next_word_accuracy(model: Captioner, images: torch.Tensor, ids: np.ndarray, owner: np.ndarray, chunk: int = 64) -> tuple[float, float]:
    """Teacher-forced (accuracy, mean cross-entropy) of the next word over every non-pad target."""
    was = model.training
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    with torch.no_grad():
        for s in range(0, len(ids), chunk):
            tok = torch.from_numpy(ids[s : s + chunk])
            tok = tok[:, : int((tok != PAD_ID).sum(1).max())]
            mem = model.encode(images[torch.from_numpy(owner[s : s + chunk])])
            logits = model.merge(model.encode_prefixes(tok[:, :-1]), mem)
            target = tok[:, 1:]
            mask = target != PAD_ID
            correct += int(((logits.argmax(-1) == target) & mask).sum())
            total += int(mask.sum())
            loss_sum += float(F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD_ID, reduction="sum"))
    model.train(was)
    return correct / max(total, 1), loss_sum / max(total, 1)


def evaluate(
    model: Captioner, vocab: Vocabulary, images: np.ndarray, captions: list[list[str]], preprocess: dict[str, Any],
    beam: int = 3, max_length: int = 20, n_examples: int = 5,
) -> dict[str, Any]:  # fmt: skip
    """BLEU-1..4 (greedy and beam), next-word accuracy and a few example captions."""
    was = model.training
    model.eval()
    x = normalize(images, preprocess["mean"], preprocess["std"])
    graphs = torch_graphs(model)
    greedy, beamed = [], []
    for s in range(0, len(x), 64):
        greedy += [c[0] for c in graphs.caption(x[s : s + 64], beam=1, max_length=max_length)]
    for i in range(len(x)):
        beamed += graphs.caption(x[i : i + 1], beam=beam, max_length=max_length, n=1)[0]
    refs = [[tokenize(c) for c in caps] for caps in captions]
    hyp_g = [vocab.words(c.tokens) for c in greedy]
    hyp_b = [vocab.words(c.tokens) for c in beamed]
    bleu_g = {k: v for k, v in corpus_bleu(refs, hyp_g).items() if k.startswith("bleu")}
    bleu_b = {k: v for k, v in corpus_bleu(refs, hyp_b).items() if k.startswith("bleu")}
    ids, owner = encode_captions(captions, vocab, max_length)
    acc, loss = next_word_accuracy(model, torch.from_numpy(x), ids, owner)
    model.train(was)
    return {
        "greedy": bleu_g,
        "beam": bleu_b,
        "beam_size": beam,
        "next_word_accuracy": acc,
        "val_loss": loss,
        "n_val": len(images),
        "examples": [
            {"references": captions[i], "greedy": " ".join(hyp_g[i]), "beam": " ".join(hyp_b[i])} for i in range(min(n_examples, len(images)))
        ],
    }


# --------------------------------------------------------------------------- training


def _fit(cfg: CaptionConfig, data: CaptionData, log: Callable[[str], None], desc: str) -> tuple[Captioner, list[dict[str, Any]], int, float]:
    model = build_model(cfg, data.vocab, cfg.seed, log)
    torch.manual_seed(cfg.seed + 2)  # dropout draws from the global generator
    pre = cfg.preprocess()
    images = torch.from_numpy(normalize(data.train_images, pre["mean"], pre["std"]))
    ids, owner = encode_captions(data.train_captions, data.vocab, cfg.max_words)
    batches = _Batches(images, ids, owner, cfg.batch_size, cfg.seed + 1)
    total = cfg.steps if cfg.steps is not None else cfg.epochs * len(batches)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    # Cosine decay to 10%: a short budget ends on small steps instead of noise.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 + 0.45 * (1 + math.cos(math.pi * min(s, total) / total)))
    model.train()
    history: list[dict[str, Any]] = []
    step = epoch = 0
    start = time.perf_counter()
    bar = tqdm(total=total, desc=desc, unit="step", disable=not cfg.progress, file=sys.stderr, dynamic_ncols=True)
    while step < total:
        loss_sum, n = 0.0, 0
        for imgs, tok, which in batches:
            mem = model.encode(imgs)[which]
            logits = model.merge(model.encode_prefixes(tok[:, :-1]), mem)
            loss = F.cross_entropy(logits.flatten(0, 1), tok[:, 1:].flatten(), ignore_index=PAD_ID)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            step += 1
            loss_sum += loss.item()
            n += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / n:.3f}", refresh=False)
            if step >= total:
                break
        epoch += 1
        history.append({"epoch": epoch, "steps": step, "train_loss": loss_sum / max(n, 1)})
    bar.close()
    return model, history, step, time.perf_counter() - start


def fit_and_evaluate(cfg: CaptionConfig, data: CaptionData, log: Callable[[str], None] = print) -> tuple[Captioner, dict[str, Any]]:
    """Train on ``data`` and evaluate on its validation images, writing nothing; returns (model, metrics)."""
    with deterministic(cfg.threads):
        model, history, steps, seconds = _fit(cfg, data, log, f"train caption ({cfg.encoder}/{cfg.cell}/{cfg.direction})")
        model.eval()
        metrics = evaluate(model, data.vocab, data.val_images, data.val_captions, cfg.preprocess(), cfg.beam, cfg.max_length)
    metrics.update(history=history, steps=steps, train_seconds=round(seconds, 2), seed=cfg.seed, vocab_size=len(data.vocab))
    return model, metrics


def train_captioner(cfg: CaptionConfig, log: Callable[[str], None] = print, data: CaptionData | None = None) -> dict[str, Any]:
    """Train, evaluate and write the run folder; returns the metrics dict."""
    cfg.validate()
    out = Path(cfg.out)
    with deterministic(cfg.threads):
        data = data or load_data(cfg)
        log(f"captioning: {len(data.train_images)} train / {len(data.val_images)} val images, vocabulary {len(data.vocab)} tokens")
        model, metrics = fit_and_evaluate(cfg, data, log)
    steps, seconds = metrics["steps"], metrics["train_seconds"]
    pre = cfg.preprocess()
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        out / CHECKPOINT_NAME, task=TASK, model=model, model_config=model.cfg.to_dict(), config=cfg.to_dict(),
        labels=data.vocab.itos, metrics=_summary(metrics), seed=cfg.seed, preprocess=pre,
    )  # fmt: skip
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    data.vocab.save(out / "vocab.json")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    g, b = metrics["greedy"], metrics["beam"]
    log(
        f"BLEU-1..4 greedy {g['bleu1']:.3f} {g['bleu2']:.3f} {g['bleu3']:.3f} {g['bleu4']:.3f} | "
        f"beam {cfg.beam} {b['bleu1']:.3f} {b['bleu2']:.3f} {b['bleu3']:.3f} {b['bleu4']:.3f} | "
        f"next-word acc {metrics['next_word_accuracy']:.3f} ({steps} steps, {seconds:.0f} s) -> {out}"
    )
    return metrics


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready metrics kept in the checkpoint (and the manifest)."""
    keep = ("greedy", "beam", "beam_size", "next_word_accuracy", "val_loss", "n_val", "steps", "seed")
    return {k: metrics[k] for k in keep if k in metrics}


# --------------------------------------------------------------------------- ablation (Tables 27-30)

# (module, variant label, overrides of the base config). Table 30 (greedy vs beam)
# is the pair of column groups of every row. The one grid behind both
# ``seedlock train caption --ablation`` and ``seedlock reproduce captioning``.
ABLATION: list[tuple[str, str, dict[str, Any]]] = [
    ("sequential (T27)", "LSTM, vanilla", {"cell": "lstm", "direction": "vanilla"}),
    ("sequential (T27)", "GRU, vanilla", {"cell": "gru", "direction": "vanilla"}),
    ("sequential (T27)", "LSTM, bi-directional", {"cell": "lstm", "direction": "bi"}),
    ("sequential (T27)", "GRU, bi-directional", {"cell": "gru", "direction": "bi"}),
    ("feature extraction", "ResNet-style (BN)", {"encoder": "resnet"}),
    ("feature extraction", "VGG-style", {"encoder": "vgg"}),
    ("embedding (T28)", "learned, vanilla", {"embedding": "learned", "direction": "vanilla"}),
    ("embedding (T28)", "GloVe, vanilla", {"embedding": "glove", "direction": "vanilla"}),
    ("embedding (T28)", "learned, bi-directional", {"embedding": "learned", "direction": "bi"}),
    ("embedding (T28)", "GloVe, bi-directional", {"embedding": "glove", "direction": "bi"}),
    ("attention (T29)", "off, vanilla", {"attention": False, "direction": "vanilla"}),
    ("attention (T29)", "on, vanilla", {"attention": True, "direction": "vanilla"}),
    ("attention (T29)", "off, bi-directional", {"attention": False, "direction": "bi"}),
    ("attention (T29)", "on, bi-directional", {"attention": True, "direction": "bi"}),
] + [("initial seed (Fig. 45)", scheme, {"init": scheme}) for scheme in INITS]

_MODEL_KEYS = ("encoder", "cell", "direction", "embedding", "attention", "init")
KEEP_PER_SEED = ("greedy", "beam", "beam_size", "next_word_accuracy", "val_loss", "n_val", "steps", "train_seconds", "history", "examples")


def model_key(cfg: CaptionConfig) -> tuple:
    """The module settings that make two variants the same model."""
    return tuple(getattr(cfg, k) for k in _MODEL_KEYS)


def _run_name(key: tuple) -> str:
    return "-".join(str(v).lower() for v in key).replace("true", "att").replace("false", "noatt")


def run_grid(
    cfg: CaptionConfig,
    variants: list[tuple[str, str, dict[str, Any]]] | None = None,
    seeds: list[int] | tuple[int, ...] | None = None,
    log: Callable[[str], None] = print,
    data: CaptionData | None = None,
    save_runs: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Train every variant (default :data:`ABLATION`) once per model seed at the same data and budget.

    ``seeds`` are model seeds (default: ``cfg.seed`` alone); the data and its
    validation split come from ``cfg.data_seed`` whatever the model seed.
    Variants whose resolved module settings coincide are trained once per
    seed. A GloVe variant is skipped, with a note, when ``cfg.glove`` is unset.
    With ``save_runs`` each training writes its run folder (checkpoint and
    all) under ``save_runs/runs/``; without it nothing is written.

    Returns one row per variant: ``module``, ``variant``, ``overrides``,
    ``key`` (the model's module settings) and ``per_seed`` (one metrics dict
    per seed, in order, with its ``seed`` and ``run`` folder or None), or
    ``skipped`` with the reason.
    """
    cfg.validate()
    seeds = list(seeds) if seeds else [cfg.seed]
    rows: list[dict[str, Any]] = []
    done: dict[tuple, dict[str, Any]] = {}
    for module, label, overrides in variants or ABLATION:
        row: dict[str, Any] = {"module": module, "variant": label, "overrides": dict(overrides)}
        if overrides.get("embedding") == "glove" and not cfg.glove:
            rows.append({**row, "skipped": "no GloVe file (pass --glove FILE)"})
            continue
        base = replace(cfg, **overrides)
        key = model_key(base)
        per_seed = []
        for seed in seeds:
            if (key, seed) not in done:
                run_cfg = replace(base, seed=seed)
                run_dir = None
                if save_runs is not None:
                    name = _run_name(key) if seeds == [cfg.seed] else f"{_run_name(key)}-seed{seed}"
                    run_dir = str(Path(save_runs) / "runs" / name)
                    run_cfg = replace(run_cfg, out=run_dir)
                log(f"[ablation] {module}: {label}, seed {seed}" + (f" -> {run_dir}" if run_dir else ""))
                if data is None:
                    with deterministic(cfg.threads):
                        data = load_data(cfg)
                if run_dir is not None:
                    metrics = train_captioner(run_cfg, log=log, data=data)
                else:
                    _, metrics = fit_and_evaluate(run_cfg, data, log)
                done[(key, seed)] = {**{k: metrics[k] for k in KEEP_PER_SEED if k in metrics}, "seed": seed, "run": run_dir}
            per_seed.append(done[(key, seed)])
        rows.append({**row, "key": dict(zip(_MODEL_KEYS, key)), "per_seed": per_seed})
    return rows


def mean_over_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Greedy and beam BLEU-1..4 and next-word accuracy, each the mean over the seeds."""
    out: dict[str, Any] = {}
    for mode in ("greedy", "beam"):
        out[mode] = {k: statistics.fmean(m[mode][k] for m in per_seed) for k in per_seed[0][mode]}
    out["next_word_accuracy"] = statistics.fmean(m["next_word_accuracy"] for m in per_seed)
    return out


def run_ablation(
    cfg: CaptionConfig,
    log: Callable[[str], None] = print,
    variants: list[tuple[str, str, dict[str, Any]]] | None = None,
    seeds: list[int] | tuple[int, ...] | None = None,
) -> list[dict[str, Any]]:
    """:func:`run_grid` with every run folder kept under ``cfg.out/runs``; writes ``ablation.md``/``.json``.

    Each returned row also holds ``greedy``, ``beam`` and ``next_word_accuracy``
    (means over the seeds) and ``runs`` (its run folders; ``run`` too with one seed).
    """
    out = Path(cfg.out)
    rows = run_grid(cfg, variants, seeds, log, save_runs=out)
    for r in rows:
        if "skipped" not in r:
            r.update(mean_over_seeds(r["per_seed"]), runs=[m["run"] for m in r["per_seed"]])
            if len(r["runs"]) == 1:
                r["run"] = r["runs"][0]  # as before multi-seed ablations
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds) if seeds else [cfg.seed]
    slim = []
    for r in rows:
        row = {k: v for k, v in r.items() if k != "per_seed"}
        if "per_seed" in r:
            row["per_seed"] = [{k: m[k] for k in ("seed", "greedy", "beam", "next_word_accuracy", "run")} for m in r["per_seed"]]
        slim.append(row)
    (out / "ablation.json").write_text(json.dumps({"config": cfg.to_dict(), "seeds": seeds, "rows": slim}, indent=2, sort_keys=True) + "\n")
    (out / "ablation.md").write_text(ablation_markdown(cfg, rows, seeds))
    log(f"wrote {out / 'ablation.md'}")
    return rows


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"


def ablation_markdown(cfg: CaptionConfig, rows: list[dict[str, Any]], seeds: list[int] | None = None) -> str:
    seeds = seeds or [cfg.seed]
    budget = f"{cfg.steps} steps" if cfg.steps else f"{cfg.epochs} epochs"
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))} (mean ± std)"
    lines = [
        "# Captioning module comparison (thesis 4.2, Tables 27-30)",
        "",
        f"Data `{cfg.data}` (data seed {cfg.data_seed}), {seed_text}, {budget} of {cfg.batch_size} images each, "
        f"size {cfg.size}. Base: {cfg.encoder}, {cfg.cell}, {cfg.direction}, {cfg.embedding} embedding, "
        f"attention {'on' if cfg.attention else 'off'}, init {cfg.init}. Each row changes only its module. "
        f"Corpus BLEU on the validation set; greedy vs beam {cfg.beam} is Table 30. "
        "`seedlock reproduce captioning` sets these beside the thesis's figures.",
        "",
        "| module | variant | greedy B1 | B2 | B3 | B4 | beam B1 | B2 | B3 | B4 | next-word acc |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['module']} | {r['variant']} | {r['skipped']} |||||||||")
            continue
        ps = r["per_seed"]
        cells = [_cell([m[mode][f"bleu{n}"] for m in ps]) for mode in ("greedy", "beam") for n in range(1, 5)]
        lines.append(f"| {r['module']} | {r['variant']} | " + " | ".join(cells) + f" | {_cell([m['next_word_accuracy'] for m in ps])} |")
    return "\n".join(lines) + "\n"
