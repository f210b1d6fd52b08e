"""``seedlock client caption IMAGE [--beam 3] [--n 3] [--max-length 20] [--model NAME] [--json FILE]``."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from seedlock.core.argtypes import INT32_MAX, INT64_MAX, int_range, model_version, output_file
from seedlock.core.errors import UserError

# The request's int32 fields; the model's own limits (the server's check_params) are tighter.
_positive_int32 = int_range(1, INT32_MAX)


def _caption(args: argparse.Namespace) -> int:
    from seedlock.clients.captioning import CaptioningClient
    from seedlock.clients.cli import _fail, connection, read_input, write_output
    from seedlock.clients.errors import SeedlockError

    if args.n > args.beam:
        raise UserError(f"--n must be from 1 to the beam size ({args.beam}), got {args.n}")
    image_path = Path(args.image)
    data = read_input(image_path)
    with CaptioningClient(args.server, timeout=args.timeout, **connection(args)) as client:
        try:
            result = client.caption(data, beam=args.beam, max_length=args.max_length, n=args.n,
                                    model=args.model or "", version=args.version)
        except SeedlockError as exc:
            raise _fail(client.server, exc, tls=client.tls) from None
    how = "greedy" if result.decoding == "greedy" else f"beam search, beam {result.beam_size}"
    print(f"{image_path.name}: {how}, max length {result.max_length}, from {result.model_name} v{result.model_version} "
          f"(digest {result.model_digest[:12]}…)")
    for i, c in enumerate(result.captions, 1):
        cut = "" if c.finished else "  [cut at max length]"
        print(f"{i:>2}. {c.text}  (log-prob {c.log_prob:.4f}){cut}")
    if args.json:
        # Full-precision floats: json round-trips them exactly, so callers can compare answers bit for bit.
        out = write_output(args.json, (json.dumps(asdict(result), indent=2, sort_keys=True) + "\n").encode())
        print(f"wrote {out}")
    return 0


def register_client(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``caption`` to ``seedlock client``."""
    from seedlock.core.caption_decoding import MAX_BEAM, MAX_LENGTH  # the server's default limits

    cap = sub.add_parser("caption", parents=[common], help="caption an image (greedy or beam search), with log-probabilities",
                         description="Send an image to the server's captioning service and print the captions, best first, "
                         "with their log-probabilities.")
    cap.add_argument("image", help="PNG or JPEG file")
    cap.add_argument("--beam", type=_positive_int32, default=3,
                     help=f"beam size; 1 decodes greedily; up to the model's limit ({MAX_BEAM} unless its manifest says "
                     "otherwise; the server names it) (default: %(default)s)")
    cap.add_argument("--n", type=_positive_int32, default=1, help="captions to return, 1 to the beam size (default: %(default)s)")
    cap.add_argument("--max-length", type=_positive_int32, default=20,
                     help=f"most words per caption, 1 up to the model's limit ({MAX_LENGTH} unless its manifest says otherwise) "
                     "(default: %(default)s)")
    cap.add_argument("--model", default=None, help="model name (default: the server's only captioning model)")
    cap.add_argument("--version", type=model_version, default=0, help=f"model version, 0 to {INT64_MAX}; 0: the latest (default: %(default)s)")
    cap.add_argument("--json", type=output_file, default=None, help="also write the answer as JSON here")
    cap.set_defaults(func=_caption)
