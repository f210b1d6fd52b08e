"""``seedlock client compose``: a melody from a running server, saved as MusicXML (and MIDI).

    seedlock client compose --genre bach --length 96 --seed 7 --out song.musicxml --midi song.mid [--primer file.mid]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seedlock.core.errors import UserError

# CLI spellings -> the service's strategy names
STRATEGIES = {"greedy": "greedy", "sample": "temperature", "temperature": "temperature", "topk": "top_k", "top_k": "top_k"}


def _note_name(midi: int | None) -> str:
    if midi is None:
        return "rest"
    return ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")[midi % 12] + str(midi // 12 - 1)


def _write(path: str, data: bytes) -> Path:
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def _compose(args: argparse.Namespace) -> int:
    from seedlock.clients.cli import _fail
    from seedlock.clients.composition import ComposeResult, CompositionClient
    from seedlock.clients.errors import SeedlockError

    primer = None
    if args.primer:
        path = Path(args.primer)
        if not path.is_file():
            raise UserError(f"primer {path} does not exist")
        primer = path.read_bytes()
    if args.length < 1:
        raise UserError("--length must be at least 1")
    if args.seed is not None and not 0 <= args.seed < 2**64:
        raise UserError("--seed must be an integer from 0 to 2**64 - 1")
    kwargs = dict(genre=args.genre or "", length=args.length, seed=args.seed, primer=primer,
                  strategy=STRATEGIES[args.strategy] if args.strategy else "", temperature=args.temperature,
                  top_k=args.top_k, model=args.model or "", version=args.version)
    with CompositionClient(args.server, timeout=args.timeout) as client:
        try:
            if args.stream:
                result = None
                for item in client.compose_stream(**kwargs):
                    if isinstance(item, ComposeResult):
                        result = item
                    else:
                        print(f"{item.index:>4}  {_note_name(item.pitch):<5} {item.duration:g}", flush=True)
                if result is None:
                    raise UserError(f"the server at {client.server} ended the stream without a result")
            else:
                result = client.compose(**kwargs)
        except SeedlockError as exc:
            raise _fail(client.server, exc) from None
    xml = _write(args.out, result.musicxml)
    print(f"wrote {xml} ({len(result.events)} events, genre {result.genre}, {result.strategy}, seed {result.seed}) "
          f"from {result.model_name} v{result.model_version} (digest {result.model_digest[:12]}…)")
    if args.midi:
        print(f"wrote {_write(args.midi, result.midi)} (MIDI)")
    if args.events:
        payload = {"seed": result.seed, "genre": result.genre, "strategy": result.strategy,
                   "temperature": result.temperature, "top_k": result.top_k, "model_digest": result.model_digest,
                   "tokens": result.events.tolist(), "notes": [[p, d] for p, d in result.notes]}
        text = json.dumps(payload, indent=1) + "\n"
        print(f"wrote {_write(args.events, text.encode())} (event list, JSON)")
    sys.stdout.flush()
    return 0


def register_client(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "compose", parents=[common], help="compose a melody; save it as MusicXML (and MIDI)",
        description="Ask the server's composer for a melody continuing a primer (a MIDI or MusicXML file) or a "
                    "genre's stored primer. The same seed, model and flags give the same melody.",
    )
    parser.add_argument("--genre", default=None, help="one of the model's genres (default: the model's only genre)")
    parser.add_argument("--length", type=int, default=96, help="events to generate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (default: the server draws one and reports it)")
    parser.add_argument("--out", required=True, help="where to write the MusicXML")
    parser.add_argument("--midi", default=None, help="also write the MIDI file here")
    parser.add_argument("--events", default=None, help="also write the event list here (JSON)")
    parser.add_argument("--primer", default=None, help="a MIDI or MusicXML file to continue (default: the genre's primer)")
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), default=None,
                        help="greedy, sample (temperature) or topk (default: the model's, top-k)")
    parser.add_argument("--temperature", type=float, default=None, help="softmax temperature, > 0 (default: the model's)")
    parser.add_argument("--top-k", dest="top_k", type=int, default=None, help="k for topk sampling (default: the model's)")
    parser.add_argument("--stream", action="store_true", help="print events as the server generates them")
    parser.add_argument("--model", default=None, help="model name (default: the server's only composition model)")
    parser.add_argument("--version", type=int, default=0, help="model version (default: the latest)")
    parser.set_defaults(func=_compose)
