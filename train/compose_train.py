"""Training, evaluation and the ablation study of the composer (thesis 3.7).

Data: each split's pieces of one genre are joined into one event stream (a
whole-note rest between pieces, so windows may straddle a piece boundary the
way a listener hears a playlist) and cut into windows of ``window`` input
events followed by ``horizon`` target events, every ``stride`` events.

Loss: cross-entropy of the pitch head + cross-entropy of the duration head
(teacher-forced), plus ``λ · l2_scale · Σ w²`` over weight matrices.

Adaptive L2 (:class:`AdaptiveL2`): λ starts at ``l2_init`` and after every
epoch moves by what the run shows — the relative generalization gap
``(val_loss − train_loss) / train_loss``. Above ``l2_target_gap`` the model
is overfitting and λ grows (× 1.5, + 0.02); below half the target it is not,
and λ shrinks (÷ 1.5). λ stays in [0, 0.5], the thesis's range. Fixed
coefficients (Table 22) are ``l2="0.1"`` etc., ``l2="none"`` for none.
``l2_scale`` (1e-3) exists because the thesis's Keras-style λ·Σw² at λ = 0.25
would swamp the cross-entropy of a model this size.

Genre: ``conditioning=True`` trains one model that takes the genre (the
demo, so one served model composes any genre); ``per_genre_training=True``
trains one model per genre, as the thesis did, and reports the mean and
spread over genres.

Seeds: ``seed`` drives the model only (torch's weight initialization and
dropout, and the batch order from :class:`~seedlock.core.rng.SeedStream`);
``split_seed`` drives the data only (the train/validation/test split by piece
and the ``max_train_windows`` subset), so changing the model seed never
changes which music a run trains and is tested on. Deterministic algorithms
are on: the same config gives bit-identical weights on one machine.

Ablation: :func:`run_variants` trains config variants (and seeds) at one
budget — :func:`run_ablation` (``seedlock train compose --ablation``) on one
seed, ``seedlock reproduce music`` on several, beside the thesis's tables.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from seedlock.core import music_events as me
from seedlock.core import music_metrics as mm
from seedlock.core import music_sampling as ms
from seedlock.core.errors import UserError
from seedlock.core.rng import SeedStream
from seedlock.train.checkpoint import save_checkpoint
from seedlock.train.composer import Composer, ComposerConfig, torch_initial_state, torch_step
from seedlock.train.config import ConfigFile
from seedlock.train.data import music_corpus as mc
from seedlock.train.determinism import deterministic

L2_MAX = 0.5
THESIS_EPOCH_MARKS = (0, 20, 60, 90)


@dataclass
class ComposeConfig(ConfigFile):
    """Every option of a composer run. Field names are the CLI flags (``_`` -> ``-``)
    and the keys of a ``--config`` YAML/JSON file; the defaults are the thesis's budget."""

    KIND = "compose"

    out: str = "runs/compose"
    data: str = "corpus"  # "corpus" or a folder of <genre>/<files>
    genres: list[str] | None = None  # None: all
    per_genre: int = mc.PER_GENRE  # corpus pieces per genre
    conditioning: bool = True
    per_genre_training: bool = False
    # model (see ComposerConfig)
    window: int = 48
    horizon: int = 48
    encoding: str = "onehot"
    cell: str = "gru"
    hidden: int = 128
    bidirectional: bool = True
    decoder: str = "multiway"
    encoder: str = "plain"
    norm: str = "ensemble"
    dropout: float = 0.1
    # optimization (thesis: Adam, lr 0.01, seed 77, 100 epochs)
    epochs: int = 100
    batch_size: int = 64
    lr: float = 0.01
    seed: int = 77  # the model: weight init, dropout, batch order
    split_seed: int = 0  # the data: split by piece and the max_train_windows subset
    grad_clip: float = 1.0
    stride: int = 12
    max_train_windows: int = 0  # 0 = all; else a subset drawn from split_seed (short budgets)
    l2: str = "adaptive"  # adaptive | none | a fixed coefficient in [0, 0.5]
    l2_init: float = 0.25
    l2_scale: float = 1e-3
    l2_target_gap: float = 0.05
    eval_windows: int = 128  # test windows continued by greedy generation
    # Intra-op threads. 1 by default: a 64-128 wide RNN gains nothing from more,
    # and on a shared CPU OpenMP's spinning made 2 threads ~15x slower than 1.
    threads: int = 1
    progress: bool = True

    def model_config(self, num_genres: int) -> ComposerConfig:
        return ComposerConfig(
            window=self.window, horizon=self.horizon, encoding=self.encoding, cell=self.cell,
            hidden=self.hidden, bidirectional=self.bidirectional, decoder=self.decoder, encoder=self.encoder, norm=self.norm,
            dropout=self.dropout, num_genres=num_genres if self.conditioning else 0,
        )


def demo_config(out: str = "runs/compose-demo") -> ComposeConfig:
    """All nine genres, one genre-conditioned model, ~2-3 minutes on 2 CPU cores."""
    return ComposeConfig(out=out, hidden=64, epochs=12, stride=12, max_train_windows=0, batch_size=64, eval_windows=96)


def ablation_config(out: str = "runs/compose-ablation") -> ComposeConfig:
    """The equal budget every ablation variant gets (short: 8 variants)."""
    return ComposeConfig(out=out, hidden=64, epochs=4, stride=24, max_train_windows=1024, batch_size=64, eval_windows=64)


# -- adaptive L2 ---------------------------------------------------------------
class AdaptiveL2:
    """λ in [0, 0.5], moved after each epoch by the relative train/validation gap."""

    def __init__(self, init: float = 0.25, target_gap: float = 0.05, high: float = L2_MAX) -> None:
        self.value = float(min(max(init, 0.0), high))
        self.target_gap, self.high = float(target_gap), float(high)
        self.history: list[dict[str, float]] = []

    def update(self, train_loss: float, val_loss: float) -> float:
        gap = (val_loss - train_loss) / max(train_loss, 1e-8)
        if gap > self.target_gap:
            self.value = min(self.high, self.value * 1.5 + 0.02)
        elif gap < self.target_gap / 2:
            self.value = self.value / 1.5
            if self.value < 1e-3:
                self.value = 0.0
        self.history.append({"gap": float(gap), "l2": self.value})
        return self.value


class FixedL2:
    def __init__(self, value: float) -> None:
        if not 0.0 <= value <= L2_MAX:
            raise UserError(f"l2 must be in [0, {L2_MAX}], got {value}")
        self.value, self.history = float(value), []

    def update(self, train_loss: float, val_loss: float) -> float:
        self.history.append({"gap": float((val_loss - train_loss) / max(train_loss, 1e-8)), "l2": self.value})
        return self.value


def make_l2(cfg: ComposeConfig) -> AdaptiveL2 | FixedL2:
    if cfg.l2 == "adaptive":
        return AdaptiveL2(cfg.l2_init, cfg.l2_target_gap)
    if cfg.l2 in ("none", "0", ""):
        return FixedL2(0.0)
    try:
        return FixedL2(float(cfg.l2))
    except ValueError:
        raise UserError(f"--l2 must be 'adaptive', 'none' or a number in [0, 0.5], got {cfg.l2!r}") from None


# -- windows ---------------------------------------------------------------------
@dataclass
class Windows:
    src: np.ndarray  # (N, window, 2)
    tgt: np.ndarray  # (N, horizon, 2)
    genre: np.ndarray  # (N,)

    def __len__(self) -> int:
        return len(self.genre)

    def subset(self, idx: np.ndarray) -> "Windows":
        return Windows(self.src[idx], self.tgt[idx], self.genre[idx])


def make_windows(pieces: list[mc.Piece], genres: list[str], window: int, horizon: int, stride: int) -> Windows:
    src, tgt, gen = [], [], []
    sep = np.array([me.SEPARATOR], dtype=np.int64)
    for gi, g in enumerate(genres):
        own = [p.events for p in pieces if p.genre == g]
        if not own:
            continue
        stream = np.concatenate([x for ev in own for x in (ev, sep)][:-1])
        for s in range(0, len(stream) - window - horizon + 1, stride):
            src.append(stream[s : s + window])
            tgt.append(stream[s + window : s + window + horizon])
            gen.append(gi)
    if not src:
        return Windows(np.zeros((0, window, 2), np.int64), np.zeros((0, horizon, 2), np.int64), np.zeros(0, np.int64))
    return Windows(np.stack(src), np.stack(tgt), np.array(gen, dtype=np.int64))


def genre_primers(data: mc.MusicData, window: int) -> dict[str, list[list[int]]]:
    """Per genre, the opening ``window`` events of its first training piece (sorted by source):
    the primer the server uses when a request names a genre but sends no melody."""
    out = {}
    for g in data.genres:
        own = sorted((p for p in data.train if p.genre == g), key=lambda p: p.source)
        if own:
            from seedlock.core.music_sampling import prepare_primer

            out[g] = prepare_primer(own[0].events[:window], window).tolist()
    return out


def cap_windows(w: Windows, cfg: ComposeConfig) -> Windows:
    """At most ``cfg.max_train_windows`` of ``w``, a subset drawn from ``cfg.split_seed`` (the data's seed, not the model's)."""
    if not cfg.max_train_windows or len(w) <= cfg.max_train_windows:
        return w
    return w.subset(np.sort(SeedStream(cfg.split_seed, 5).permutation(len(w))[: cfg.max_train_windows]))


# -- training ----------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def _tensors(w: Windows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    src = torch.from_numpy(w.src)
    tgt = torch.from_numpy(w.tgt)
    prev = torch.cat([src[:, -1:], tgt[:, :-1]], dim=1)
    return src, prev, tgt, torch.from_numpy(w.genre)


def l2_term(model: Composer) -> torch.Tensor:
    return sum((p.pow(2).sum() for n, p in model.named_parameters() if p.dim() >= 2), torch.zeros(()))


def ce_losses(model: Composer, src, prev, tgt, genre) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    p, d = model(src, prev, genre)
    lp = F.cross_entropy(p.reshape(-1, p.shape[-1]), tgt[..., 0].reshape(-1))
    ld = F.cross_entropy(d.reshape(-1, d.shape[-1]), tgt[..., 1].reshape(-1))
    return lp, ld, p, d


@torch.no_grad()
def evaluate_loss(model: Composer, w: Windows, batch: int = 256) -> dict[str, float]:
    model.eval()
    src, prev, tgt, genre = _tensors(w)
    tot_p = tot_d = err_p = err_d = 0.0
    n = len(w)
    for i in range(0, n, batch):
        sl = slice(i, i + batch)
        lp, ld, p, d = ce_losses(model, src[sl], prev[sl], tgt[sl], genre[sl])
        k = src[sl].shape[0]
        tot_p += float(lp) * k
        tot_d += float(ld) * k
        err_p += mm.top1_error(p.numpy(), tgt[sl][..., 0].numpy()) * k
        err_d += mm.top1_error(d.numpy(), tgt[sl][..., 1].numpy()) * k
    n = max(n, 1)
    return {"loss_pitch": tot_p / n, "loss_duration": tot_d / n, "loss": (tot_p + tot_d) / n,
            "top1_error_pitch": err_p / n, "top1_error_duration": err_d / n}


def evaluate_generation(model: Composer, w: Windows, count: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Greedy continuations of ``count`` evenly spread windows, compared with the truth."""
    idx = np.unique(np.linspace(0, len(w) - 1, min(count, len(w))).round().astype(int))
    sub = w.subset(idx)
    model.eval()
    gen = model.greedy(torch.from_numpy(sub.src), torch.from_numpy(sub.genre), sub.tgt.shape[1]).numpy()
    return mm.compare_sequences(gen, sub.tgt), gen, idx


@dataclass
class RunResult:
    folder: Path
    metrics: dict[str, Any]
    model: Composer
    history: list[dict[str, float]] = field(default_factory=list)


def load_data(cfg: ComposeConfig) -> mc.MusicData:
    """The run's music, split by piece with ``cfg.split_seed`` (never the model seed)."""
    if cfg.data == "corpus":
        return mc.load_corpus(cfg.genres, cfg.per_genre, seed=cfg.split_seed, progress=cfg.progress)
    data = mc.load_folder(cfg.data, seed=cfg.split_seed, progress=cfg.progress)
    if cfg.genres:
        keep = [g for g in data.genres if g in cfg.genres]
        data = mc.MusicData(keep, *[[p for p in getattr(data, s) if p.genre in keep] for s in ("train", "validation", "test")])
    return data


def train_compose(
    cfg: ComposeConfig, data: mc.MusicData | None = None, log: Callable[[str], None] = print, write: bool = True
) -> RunResult:
    """Train one composer (or one per genre) and evaluate it on the test split."""
    with deterministic(cfg.threads if cfg.threads > 0 else None):
        return _train_compose(cfg, data, log, write)


def _train_compose(
    cfg: ComposeConfig, data: mc.MusicData | None = None, log: Callable[[str], None] = print, write: bool = True
) -> RunResult:
    data = data if data is not None else load_data(cfg)
    if cfg.per_genre_training:
        return _train_per_genre(cfg, data, log, write)
    seed_everything(cfg.seed)
    genres = list(data.genres)
    train_w = make_windows(data.train, genres, cfg.window, cfg.horizon, cfg.stride)
    val_w = make_windows(data.validation, genres, cfg.window, cfg.horizon, cfg.stride)
    test_w = make_windows(data.test, genres, cfg.window, cfg.horizon, cfg.stride)
    if len(train_w) == 0 or len(val_w) == 0 or len(test_w) == 0:
        raise UserError(
            f"too little music for {cfg.window}+{cfg.horizon}-event windows "
            f"(train/val/test windows: {len(train_w)}/{len(val_w)}/{len(test_w)}); add pieces or shorten --window"
        )
    train_w = cap_windows(train_w, cfg)
    mcfg = cfg.model_config(len(genres))
    model = Composer(mcfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    l2 = make_l2(cfg)
    src, prev, tgt, genre = _tensors(train_w)
    n = len(train_w)
    steps = -(-n // cfg.batch_size)
    log(f"compose: {len(genres)} genre(s), windows train/val/test {n}/{len(val_w)}/{len(test_w)}, "
        f"{sum(p.numel() for p in model.parameters())} parameters, {cfg.epochs} epochs")
    from tqdm import tqdm

    history: list[dict[str, float]] = []
    started = time.time()
    bar = tqdm(total=cfg.epochs * steps, desc="compose", unit="step", disable=not cfg.progress, leave=False)
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.from_numpy(SeedStream(cfg.seed, 100 + epoch).permutation(n))
        run_p = run_d = 0.0
        for b in range(steps):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            lp, ld, _, _ = ce_losses(model, src[idx], prev[idx], tgt[idx], genre[idx])
            loss = lp + ld
            if l2.value > 0:
                loss = loss + l2.value * cfg.l2_scale * l2_term(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            run_p += lp.item() * len(idx)
            run_d += ld.item() * len(idx)
            bar.update(1)
            bar.set_postfix(epoch=epoch, pitch=f"{lp.item():.3f}", dur=f"{ld.item():.3f}", l2=f"{l2.value:.3f}")
        train_loss = {"loss_pitch": run_p / n, "loss_duration": run_d / n}
        val = evaluate_loss(model, val_w)
        lam = l2.value
        l2.update(train_loss["loss_pitch"] + train_loss["loss_duration"], val["loss"])
        history.append({"epoch": epoch, "train_loss_pitch": train_loss["loss_pitch"],
                        "train_loss_duration": train_loss["loss_duration"], "val_loss": val["loss"],
                        "val_top1_error_pitch": val["top1_error_pitch"],
                        "val_top1_error_duration": val["top1_error_duration"], "l2": lam, "l2_next": l2.value})
    bar.close()
    test = evaluate_loss(model, test_w)
    train_fit = evaluate_loss(model, train_w)  # how well the training windows are fitted (the thesis's "Train" top-1 error)
    gen_metrics, gen, idx = evaluate_generation(model, test_w, cfg.eval_windows)
    metrics: dict[str, Any] = {
        "test": {**test, **{f"{a}_{k}": v for a, d in gen_metrics.items() for k, v in d.items()}},
        "validation": history[-1] if history else {},
        "train": train_fit,
        "windows": {"train": n, "validation": len(val_w), "test": len(test_w), "generated": int(len(idx))},
        "pieces": data.summary(),
        "genres": genres,
        "l2_final": l2.value,
        "seconds": round(time.time() - started, 1),
        "thesis_epoch_marks": {str(e): history[e] for e in THESIS_EPOCH_MARKS if e < len(history)},
    }
    folder = Path(cfg.out)
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(
            folder / "checkpoint.pt", task="composition", model=model, model_config=mcfg.to_dict(),
            config=cfg.to_dict(), labels=genres, metrics=json.loads(json.dumps(metrics["test"])), seed=cfg.seed,
            preprocess={"window": cfg.window, "horizon": cfg.horizon, "vocab": me.VOCAB_VERSION,
                        "pitch_low": me.PITCH_LOW, "pitch_high": me.PITCH_HIGH, "durations": list(me.DURATIONS),
                        "conditioned": bool(mcfg.num_genres), "primers": genre_primers(data, cfg.window)},
        )
        (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        (folder / "metrics.json").write_text(json.dumps({**metrics, "history": history}, indent=2) + "\n")
        i = 0
        g = int(test_w.genre[idx[i]])
        sampled = None  # decoder 'none' has no step decoder to sample from
        if mcfg.decoder != "none":
            sampled = ms.generate(torch_step(model, g), test_w.src[idx[i]][-1], torch_initial_state(model, test_w.src[idx[i]], g),
                                  cfg.horizon, ms.SamplingParams("top_k", 1.0, 8), seed=cfg.seed)
        piano_roll_png(folder / "pianoroll.png", test_w.src[idx[i]], test_w.tgt[idx[i]], gen[i], sampled=sampled,
                       title=f"{genres[g]}: test window {int(idx[i])}; greedy and top-8 sampled (seed {cfg.seed})")
        log(f"compose: wrote {folder}/checkpoint.pt, metrics.json, pianoroll.png")
    t = metrics["test"]
    log(f"compose: test top-1 error pitch {t['top1_error_pitch']:.3f} duration {t['top1_error_duration']:.3f}; "
        f"total error pitch {t['pitch_total_error']:.1f} duration {t['duration_total_error']:.1f}")
    return RunResult(folder, metrics, model, history)


def _train_per_genre(cfg: ComposeConfig, data: mc.MusicData, log: Callable[[str], None], write: bool = True) -> RunResult:
    """One model per genre (the thesis's setting). ``metrics["test"]`` and the history
    are the means over genres (the thesis's "averaged values"); ``summary`` adds their spread."""
    results = {}
    for g in data.genres:
        sub = mc.MusicData([g], *[[p for p in getattr(data, s) if p.genre == g] for s in ("train", "validation", "test")])
        sub_cfg = replace(cfg, per_genre_training=False, conditioning=False, genres=[g], out=str(Path(cfg.out) / g))
        log(f"compose: per-genre run {g}")
        results[g] = _train_compose(sub_cfg, sub, log, write)
    runs = list(results.values())
    keys = [k for k, v in runs[0].metrics["test"].items() if isinstance(v, float)]
    summary = {k: {"mean": float(np.mean([r.metrics["test"][k] for r in runs])),
                   "std": float(np.std([r.metrics["test"][k] for r in runs]))} for k in keys}
    history = [{k: float(np.mean([r.history[e][k] for r in runs])) for k in runs[0].history[e]} for e in range(len(runs[0].history))]
    metrics = {"test": {k: v["mean"] for k, v in summary.items()}, "summary": summary,
               "train": {k: float(np.mean([r.metrics["train"][k] for r in runs])) for k in runs[0].metrics["train"]},
               "per_genre": {g: r.metrics["test"] for g, r in results.items()},
               "per_genre_history": {g: r.history for g, r in results.items()},
               "l2_final": float(np.mean([r.metrics["l2_final"] for r in runs])),
               "windows": {g: r.metrics["windows"] for g, r in results.items()},
               "seconds": round(sum(r.metrics["seconds"] for r in runs), 1)}
    if write:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "metrics.json").write_text(json.dumps({**metrics, "history": history}, indent=2) + "\n")
    return RunResult(Path(cfg.out), metrics, runs[0].model, history)


# -- figures -----------------------------------------------------------------------
def piano_roll_png(
    path: str | Path, primer: np.ndarray, truth: np.ndarray, generated: np.ndarray, title: str = "",
    sampled: np.ndarray | None = None,
) -> Path:
    """Primer then continuation: truth, greedy and (optionally) seeded top-k panels
    (time in quarter notes, pitch in MIDI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(truth, "truth", "tab:blue"), (generated, "greedy", "tab:orange")]
    if sampled is not None:
        panels.append((sampled, "top-k sampled", "tab:green"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 3 * len(panels)), sharex=True, sharey=True)
    t_max = 0.0
    for ax, (cont, name, color) in zip(axes, panels):
        t = 0.0
        for part, col in ((primer, "0.6"), (cont, color)):
            for midi, ql in me.to_values(part):
                if midi is not None:
                    ax.add_patch(plt.Rectangle((t, midi - 0.4), ql, 0.8, color=col))
                t += ql
            if part is primer:
                ax.axvline(t, color="k", lw=0.8, ls="--")
        t_max = max(t_max, t)
        ax.set_ylabel(f"{name}\nMIDI pitch")
    axes[0].set_xlim(0, t_max)
    shown = [primer] + [p[0] for p in panels]
    lo = min([m for ev in shown for m, _ in me.to_values(ev) if m is not None] or [48])
    hi = max([m for ev in shown for m, _ in me.to_values(ev) if m is not None] or [84])
    axes[0].set_ylim(lo - 2, hi + 2)
    axes[-1].set_xlabel("quarter notes (grey: primer)")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- ablation ----------------------------------------------------------------------
ABLATION_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("one-hot bi-Seq2Seq multi-way, adaptive L2 (proposal)", {}),
    ("whole-encoded bi-Seq2Seq multi-way, adaptive L2 (T20)", {"encoding": "whole"}),
    ("one-hot uni-directional encoder, adaptive L2 (T21)", {"bidirectional": False}),
    ("one-hot bi-Seq2Seq vanilla decoder, adaptive L2 (T23/24)", {"decoder": "vanilla"}),
    ("one-hot bi-Seq2Seq multi-way, no L2 (T22)", {"l2": "none"}),
    ("one-hot bi-Seq2Seq multi-way, L2 0.1 (T22)", {"l2": "0.1"}),
    ("one-hot bi-Seq2Seq multi-way, L2 0.25 (T22)", {"l2": "0.25"}),
    ("one-hot bi-Seq2Seq multi-way, L2 0.5 (T22)", {"l2": "0.5"}),
]


def variant_row(cfg: ComposeConfig, data: mc.MusicData, name: str, override: dict[str, Any], seed: int,
                log: Callable[[str], None] = print, write: bool = False) -> dict[str, Any]:
    """Train one ablation variant (``cfg`` with ``override``, model seed ``seed``) on ``data``:
    its test measures (means over genres when training per genre), final λ and training history."""
    r = train_compose(replace(cfg, seed=seed, **override), data, log, write=write)
    row = {"variant": name, "override": override, "seed": seed, **r.metrics["test"],
           **{f"train_{k}": v for k, v in r.metrics["train"].items()}, "l2_final": r.metrics["l2_final"],
           "train_loss_last": (r.history[-1]["train_loss_pitch"], r.history[-1]["train_loss_duration"]), "history": r.history,
           "seconds": r.metrics["seconds"], "windows": r.metrics["windows"]}
    if "per_genre" in r.metrics:
        row["per_genre"] = r.metrics["per_genre"]
    return row


_WORKER_DATA: mc.MusicData | None = None


def _worker_init(data: mc.MusicData) -> None:
    global _WORKER_DATA
    _WORKER_DATA = data


def _worker_row(cfg: ComposeConfig, name: str, override: dict[str, Any], seed: int) -> dict[str, Any]:
    assert _WORKER_DATA is not None
    return variant_row(cfg, _WORKER_DATA, name, override, seed, log=lambda s: None)


def run_variants(cfg: ComposeConfig, data: mc.MusicData, variants: list[tuple[str, dict[str, Any]]], seeds: list[int] | None = None,
                 log: Callable[[str], None] = print, workers: int = 1, write_first: bool = False) -> list[dict[str, Any]]:
    """Every variant x model seed at ``cfg``'s budget on the same ``data`` (one split: ``cfg.split_seed``);
    rows in variant-major order. ``workers`` > 1 trains in that many processes (each run is
    deterministic on its own, so the rows do not depend on it); ``write_first`` keeps the first
    run's checkpoint and piano roll under ``cfg.out/variant0``."""
    seeds = list(seeds) if seeds else [cfg.seed]
    jobs = [(i, name, override, seed) for i, (name, override) in enumerate(variants) for seed in seeds]
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    first = 0
    if write_first and jobs:  # in this process, so the artifacts are written
        i, name, override, seed = jobs[0]
        log(f"ablation 1/{len(jobs)}: {name}, seed {seed}")
        rows[0] = variant_row(replace(cfg, out=str(Path(cfg.out) / "variant0")), data, name, override, seed, log, write=True)
        first = 1
    if workers > 1 and len(jobs) - first > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")  # no fork of a process that has started torch's threads
        with ProcessPoolExecutor(min(workers, len(jobs) - first), mp_context=ctx, initializer=_worker_init, initargs=(data,)) as pool:
            futures = {pool.submit(_worker_row, cfg, name, override, seed): k for k, (i, name, override, seed) in enumerate(jobs) if k >= first}
            for done, fut in enumerate(as_completed(futures), start=first + 1):
                k = futures[fut]
                rows[k] = fut.result()
                log(f"ablation {done}/{len(jobs)}: {jobs[k][1]}, seed {jobs[k][3]} ({rows[k]['seconds']:.0f} s)")
    else:
        for k in range(first, len(jobs)):
            i, name, override, seed = jobs[k]
            log(f"ablation {k + 1}/{len(jobs)}: {name}, seed {seed}")
            rows[k] = variant_row(cfg, data, name, override, seed, log)
    return [r for r in rows if r is not None]


def run_ablation(cfg: ComposeConfig, log: Callable[[str], None] = print,
                 variants: list[tuple[str, dict[str, Any]]] | None = None) -> Path:
    """Train every variant at the same budget (cfg's, one seed), write ablation.md / ablation.json.
    ``seedlock reproduce music`` runs the same variants on several seeds beside the thesis's tables."""
    data = load_data(cfg)
    rows = run_variants(cfg, data, variants or ABLATION_VARIANTS, [cfg.seed], log, write_first=True)  # the proposal keeps its checkpoint
    for r in rows:
        r.pop("history", None)
        r.pop("per_genre", None)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps({"budget": cfg.to_dict(), "rows": rows}, indent=2) + "\n")
    (out / "ablation.md").write_text(ablation_markdown(rows, cfg))
    log(f"ablation: wrote {out}/ablation.md")
    return out / "ablation.md"


def ablation_markdown(rows: list[dict[str, Any]], cfg: ComposeConfig) -> str:
    head = (f"# Composer ablation (thesis Tables 20-22)\n\nEqual budget: {cfg.epochs} epochs, hidden {cfg.hidden}, "
            f"≤ {cfg.max_train_windows or 'all'} training windows, seed {cfg.seed}, split seed {cfg.split_seed}; measures on the test split "
            "(top-1: teacher-forced; the rest: greedy 48-event continuations; see seedlock.core.music_metrics).\n\n")
    cols = "| variant | top-1 err P | top-1 err D | total err P | total err D | cos P | cos D | r P | r D | gen μ/σ P (true) | gen μ/σ D (true) | final λ |\n"
    cols += "|" + "---|" * 12 + "\n"
    lines = []
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['top1_error_pitch']:.3f} | {r['top1_error_duration']:.3f} | "
            f"{r['pitch_total_error']:.1f} | {r['duration_total_error']:.1f} | {r['pitch_cosine']:.3f} | "
            f"{r['duration_cosine']:.3f} | {r['pitch_pearson']:.3f} | {r['duration_pearson']:.3f} | "
            f"{r['pitch_generated_mean']:.1f}/{r['pitch_generated_std']:.1f} ({r['pitch_true_mean']:.1f}/{r['pitch_true_std']:.1f}) | "
            f"{r['duration_generated_mean']:.2f}/{r['duration_generated_std']:.2f} ({r['duration_true_mean']:.2f}/{r['duration_true_std']:.2f}) | "
            f"{r['l2_final']:.3f} |"
        )
    return head + cols + "\n".join(lines) + "\n"
