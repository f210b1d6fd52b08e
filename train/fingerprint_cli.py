"""``seedlock train fingerprint-gan``: the fake-fingerprint DCGAN (thesis 3.6),
and the builder ``load_checkpoint`` uses to rebuild a fingerprint checkpoint's
model (its generator bank).

Wired by ``seedlock.train.cli`` through :func:`register_train`. Option values
come from, in increasing priority: the FingerprintGANConfig defaults (the
calibrated demo), ``--config FILE.yaml``, then the flags given
(:func:`seedlock.train.config.config_from_args`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from seedlock.core.argtypes import non_negative_int, positive_int
from seedlock.core.errors import UserError

# Names repeated here (not imported) so building the parser never imports torch.
QUALITIES = ("Q1", "Q2", "Q3", "Q5")
G_ACTIVATIONS = ("relu", "elu", "bi-relu", "bi-elu")
D_ACTIVATIONS = ("leaky-relu", "relu", "elu", "bi-relu", "bi-elu")


def build_model(model_config: dict[str, Any], labels: list[str]) -> Any:
    """The checkpoint's model: one generator per label (``["all"]`` or the qualities)."""
    from seedlock.train.dcgan import DCGANConfig, GeneratorBank

    return GeneratorBank(DCGANConfig.from_dict(model_config), list(labels))


def _number(low: float, high: float | None, low_open: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        ok = (value > low if low_open else value >= low) and (high is None or value < high) and value == value
        if not ok or value == float("inf"):
            bound = f"{'>' if low_open else '>='} {low}" + (f" and < {high}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        return value

    return parse


def _qualities(text: str) -> list[str]:
    items = [q.strip() for q in text.split(",") if q.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one quality, e.g. Q1,Q2,Q3,Q5")
    return items


def register_train(train_subparsers: Any) -> None:
    """Add ``fingerprint-gan`` to ``seedlock train``'s subcommands."""
    p = train_subparsers.add_parser(
        "fingerprint-gan",
        help="train the fake-fingerprint DCGAN (thesis 3.6)",
        description=(
            "Train a DCGAN (Radford et al.) on procedural fake fingerprints (default) or a folder with one "
            "subfolder per quality, on all qualities together (--mode all) or one DCGAN per quality (--mode each). "
            "Writes checkpoint.pt, config.json, metrics.json, data_samples.png, samples_{start,middle,end}.png, "
            "samples_progress.png and loss_curves.png to --out."
        ),
    )
    S = argparse.SUPPRESS  # unset flags stay absent, so --config values are not overwritten by defaults
    g = p.add_argument_group("config")
    g.add_argument("--config", metavar="FILE", help="YAML/JSON file of options (a run's config.json works); flags override it")
    g = p.add_argument_group("data")
    g.add_argument("--data", default=S, metavar="embedded|DIR", help="'embedded' (procedural) or a folder DIR/<quality>/*.png [embedded]")
    g.add_argument("--data-seed", "--split-seed", dest="data_seed", type=non_negative_int, default=S,
                   help="seed of the embedded impressions; independent of --seed [0]")
    g.add_argument("--size", type=int, choices=(64, 128), default=S, help="image side in pixels [64]")
    g.add_argument("--n-per-quality", type=positive_int, default=S, help="training images per quality (embedded: how many [600]; folder: a cap)")
    g.add_argument("--qualities", type=_qualities, default=S, metavar="Q1,Q2,...", help="qualities to train on [all: Q1,Q2,Q3,Q5 / every subfolder]")
    g.add_argument("--mode", choices=("all", "each"), default=S, help="one DCGAN on all qualities, or one per quality (thesis) [all]")
    g = p.add_argument_group("model")
    g.add_argument("--latent-dim", type=positive_int, default=S, help="latent size Z [100]")
    g.add_argument("--g-width", type=positive_int, default=S, help="generator channels at its last stage (doubling inwards) [32; paper 64]")
    g.add_argument("--d-width", type=positive_int, default=S, help="discriminator channels at its first stage [16; paper 64]")
    g.add_argument("--g-activation", choices=G_ACTIVATIONS, default=S, help="generator activation; bi-* is the thesis's bi-activation [relu]")
    g.add_argument("--d-activation", choices=D_ACTIVATIONS, default=S, help="discriminator activation [leaky-relu]")
    g.add_argument("--alpha", type=_number(0, None, low_open=True), default=S, help="ELU alpha for elu / bi-elu [1.0]")
    g.add_argument("--leak", type=_number(0, 1), default=S, help="LeakyReLU slope [0.2]")
    g = p.add_argument_group("loss")
    g.add_argument("--loss", choices=("bce", "hinge", "lsgan"), default=S, help="GAN loss [bce]")
    g.add_argument("--l1", type=_number(0, None), default=S, help="weight of mean |y - p| (prediction error) [0]")
    g.add_argument("--l2", type=_number(0, None), default=S, help="weight of mean (y - p)^2 [0]")
    g.add_argument("--exp-reg", type=_number(0, None), default=S, help="weight of the nonlinear exponential regularizer mean|e|*exp(-mean e^2) (thesis 3.3, Eq. 5) [0]")
    g = p.add_argument_group("optimization")
    g.add_argument("--steps", type=positive_int, default=S, help="optimizer steps per DCGAN (--mode each trains one per quality) [1000]")
    g.add_argument("--batch-size", type=positive_int, default=S, help="images per step [32]")
    g.add_argument("--lr", type=_number(0, None, low_open=True), default=S, help="Adam learning rate [0.0002]")
    g.add_argument("--beta1", type=_number(0, 1), default=S, help="Adam beta1 [0.5]")
    g.add_argument("--seed", type=non_negative_int, default=S, help="training seed: weights, data order, latents [777]")
    g = p.add_argument_group("run")
    g.add_argument("--samples", type=positive_int, default=S, help="images per sample grid [64]")
    g.add_argument("--log-every", type=positive_int, default=S, help="steps averaged into one loss-history entry [25]")
    g.add_argument("--out", default=S, metavar="DIR", help="run folder to write [runs/fingerprint-gan]")
    g.add_argument("--threads", type=positive_int, default=S, help="torch CPU threads [torch default]")
    g.add_argument("--device", choices=("cpu", "cuda", "auto"), default=S, help="where to train [cpu]")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=S, help="no progress bar")
    p.set_defaults(func=train_fingerprint_gan_command)


def train_fingerprint_gan_command(args: argparse.Namespace) -> int:
    """Handler of ``seedlock train fingerprint-gan``."""
    from seedlock.train.config import config_from_args
    from seedlock.train.fingerprint_gan import FingerprintGANConfig, train_fingerprint_gan

    cfg = config_from_args(FingerprintGANConfig, args)
    cfg.validate()  # before the folder check: a bad option is named first
    if cfg.data != "embedded" and not Path(cfg.data).is_dir():
        raise UserError(f"--data {cfg.data}: no such folder (use 'embedded' or a folder with quality subfolders)")
    run_dir = train_fingerprint_gan(cfg)
    m = json.loads((run_dir / "metrics.json").read_text())
    _print_summary(run_dir, m)
    return 0


def _print_summary(run_dir: Path, m: dict[str, Any]) -> None:
    t = m["timing"]
    gens = ", ".join(m["generators"])
    print(f"trained {len(m['generators'])} DCGAN(s) [{gens}] on {', '.join(m['qualities'])}: "
          f"{m['steps_per_generator']} steps each, seed {m['seed']}, {t['train_seconds']:.1f} s")  # fmt: skip
    for name, f in m["final"].items():
        print(f"  {name}: D loss {f['d_loss']:.3f}, G loss {f['g_loss']:.3f} (mean of the last logged steps)")
    sim = m["similarity"]
    for label, key in (("generated", "real_vs_generated"), ("real (baseline)", "real_vs_real")):
        r = sim[key]
        print(f"  vs {sim['against']}, {label:>15}: Hamming {r['hamming']['mean']:.1f} px, "
              f"histogram r {r['pearson']['mean']:.3f} ± {r['pearson']['std']:.3f}, IoU {r['iou']['mean']:.3f}")  # fmt: skip
    print(f"run folder: {run_dir}  (checkpoint.pt, config.json, metrics.json, samples_*.png, data_samples.png, loss_curves.png)")
