"""``seedlock client caption IMAGE [--beam 3] [--n 3] [--max-length 20] [--model NAME] [--json FILE]``."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from seedlock.core.errors import UserError


def _caption(args: argparse.Namespace) -> int:
    from seedlock.clients.captioning import CaptioningClient
    from seedlock.clients.cli import _fail
    from seedlock.clients.errors import SeedlockError

    image_path = Path(args.image)
    if not image_path.is_file():
        raise UserError(f"image {image_path} does not exist")
    data = image_path.read_bytes()
    with CaptioningClient(args.server, timeout=args.timeout) as client:
        try:
            result = client.caption(data, beam=args.beam, max_length=args.max_length, n=args.n,
                                    model=args.model or "", version=args.version)
        except SeedlockError as exc:
            raise _fail(client.server, exc) from None
    how = "greedy" if result.decoding == "greedy" else f"beam search, beam {result.beam_size}"
    print(f"{image_path.name}: {how}, max length {result.max_length}, from {result.model_name} v{result.model_version} "
          f"(digest {result.model_digest[:12]}…)")
    for i, c in enumerate(result.captions, 1):
        cut = "" if c.finished else "  [cut at max length]"
        print(f"{i:>2}. {c.text}  (log-prob {c.log_prob:.4f}){cut}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        # Full-precision floats: json round-trips them exactly, so callers can compare answers bit for bit.
        out.write_text(json.dumps(asdict(result), indent=2, sort_keys=True) + "\n")
        print(f"wrote {out}")
    return 0


def _whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants a whole number, got {text!r}") from None
    if not -(2**31) <= value < 2**31:
        raise argparse.ArgumentTypeError(f"{value} is out of range")
    return value  # the real limits are the server's: it knows the model's and says them


def register_client(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``caption`` to ``seedlock client``."""
    cap = sub.add_parser("caption", parents=[common], help="caption an image (greedy or beam search), with log-probabilities",
                         description="Send an image to the server's captioning service and print the captions, best first, "
                         "with their log-probabilities.")
    cap.add_argument("image", help="PNG or JPEG file")
    cap.add_argument("--beam", type=_whole, default=3, help="beam size; 1 decodes greedily (default: %(default)s)")
    cap.add_argument("--n", type=_whole, default=1, help="captions to return, at most the beam size (default: %(default)s)")
    cap.add_argument("--max-length", type=_whole, default=20, help="most words per caption (default: %(default)s)")
    cap.add_argument("--model", default=None, help="model name (default: the server's only captioning model)")
    cap.add_argument("--version", type=int, default=0, help="model version (default: the latest)")
    cap.add_argument("--json", default=None, help="also write the answer as JSON here")
    cap.set_defaults(func=_caption)
