"""``seedlock client compose``: a melody from a running server, saved as MusicXML (and MIDI).

    seedlock client compose --genre bach --length 96 --seed 7 --out song.musicxml --midi song.mid [--primer file.mid]
"""

from __future__ import annotations

import argparse
import json
import sys

from seedlock.core import music_sampling as ms
from seedlock.core.argtypes import INT64_MAX, UINT64_MAX, float_range, int_range, model_version, output_file, seed
from seedlock.core.errors import UserError

# CLI spellings -> the service's strategy names
STRATEGIES = {"greedy": "greedy", "sample": "temperature", "temperature": "temperature", "topk": "top_k", "top_k": "top_k"}


def _note_name(midi: int | None) -> str:
    if midi is None:
        return "rest"
    return ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")[midi % 12] + str(midi // 12 - 1)


def _check_primer(path: str) -> bytes:
    """The primer file's bytes, held to the server's limits before a connection is made."""
    from seedlock.clients.cli import read_input
    from seedlock.core import music_events as me
    from seedlock.core import primer_files as pf

    data = read_input(path, "primer")
    if not data:
        raise UserError(f"primer {path} is empty; give a MIDI or MusicXML file")
    try:
        pf.check_primer_file(data)
    except me.MusicDecodeError as exc:
        raise UserError(f"primer {path}: {exc}") from None
    return data


def _compose(args: argparse.Namespace) -> int:
    from seedlock.clients.cli import _fail, connection, write_output
    from seedlock.clients.composition import ComposeResult, CompositionClient
    from seedlock.clients.errors import SeedlockError

    primer = _check_primer(args.primer) if args.primer else None
    kwargs = dict(genre=args.genre or "", length=args.length, seed=args.seed, primer=primer,
                  strategy=STRATEGIES[args.strategy] if args.strategy else "", temperature=args.temperature,
                  top_k=args.top_k, model=args.model or "", version=args.version)
    with CompositionClient(args.server, timeout=args.timeout, **connection(args)) as client:
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
            raise _fail(client.server, exc, tls=client.tls) from None
    xml = write_output(args.out, result.musicxml)
    print(f"wrote {xml} ({len(result.events)} events, genre {result.genre}, {result.strategy}, seed {result.seed}) "
          f"from {result.model_name} v{result.model_version} (digest {result.model_digest[:12]}…)")
    if args.midi:
        print(f"wrote {write_output(args.midi, result.midi)} (MIDI)")
    if args.events:
        payload = {"seed": result.seed, "genre": result.genre, "strategy": result.strategy,
                   "temperature": result.temperature, "top_k": result.top_k, "model_digest": result.model_digest,
                   "tokens": result.events.tolist(), "notes": [[p, d] for p, d in result.notes]}
        text = json.dumps(payload, indent=1) + "\n"
        print(f"wrote {write_output(args.events, text.encode())} (event list, JSON)")
    sys.stdout.flush()
    return 0


def register_client(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "compose", parents=[common], help="compose a melody; save it as MusicXML (and MIDI)",
        description="Ask the server's composer for a melody continuing a primer (a MIDI or MusicXML file) or a "
                    "genre's stored primer. The same seed, model and flags give the same melody.",
    )
    from seedlock.core import primer_files as pf

    parser.add_argument("--genre", default=None, help="one of the model's genres (default: the model's only genre)")
    parser.add_argument("--length", type=int_range(1, ms.MAX_LENGTH), default=96,
                        help=f"events to generate, 1 to {ms.MAX_LENGTH} (a model may set a lower limit; "
                        "the server names it) (default: %(default)s)")
    parser.add_argument("--seed", type=seed, default=None,
                        help=f"sampling seed, 0 to {UINT64_MAX} (default: the server draws one and reports it)")
    parser.add_argument("--out", type=output_file, required=True, help="where to write the MusicXML")
    parser.add_argument("--midi", type=output_file, default=None, help="also write the MIDI file here")
    parser.add_argument("--events", type=output_file, default=None, help="also write the event list here (JSON)")
    parser.add_argument("--primer", default=None,
                        help=f"a MIDI, MusicXML or MXL file to continue: at most {pf.MAX_PRIMER_BYTES / pf.MIB:g} MiB "
                        f"({pf.MAX_INFLATED_BYTES / pf.MIB:g} MiB once an MXL is inflated) and {pf.MAX_PRIMER_NOTES} "
                        "notes (default: the genre's primer)")
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), default=None,
                        help="greedy, sample (temperature) or topk (default: the model's, top-k)")
    parser.add_argument("--temperature", type=float_range(ms.MIN_TEMPERATURE, ms.MAX_TEMPERATURE), default=None,
                        help=f"softmax temperature, {ms.MIN_TEMPERATURE:g} to {ms.MAX_TEMPERATURE:g}; lower is "
                        "more predictable (for the most likely event use --strategy greedy) (default: the model's)")
    parser.add_argument("--top-k", dest="top_k", type=int_range(ms.MIN_TOP_K, ms.MAX_TOP_K), default=None,
                        help=f"k for topk sampling, {ms.MIN_TOP_K} to {ms.MAX_TOP_K} (default: the model's)")
    parser.add_argument("--stream", action="store_true", help="print events as the server generates them")
    parser.add_argument("--model", default=None, help="model name (default: the server's only composition model)")
    parser.add_argument("--version", type=model_version, default=0,
                        help=f"model version, 0 to {INT64_MAX}; 0: the latest (default: %(default)s)")
    parser.set_defaults(func=_compose)
