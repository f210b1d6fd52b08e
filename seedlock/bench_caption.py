"""``seedlock bench caption``: captions/s and p50 latency, in-process vs through the server.

For one captioning model and one image (the scene stored with the export), for
greedy decoding and beam search (beam 3), one caption per request, one request
at a time:

1. in-process: the whole caption pipeline (decode .. words) on the server's
   code and session settings, no gRPC;
2. ``seedlock serve`` in a subprocess, end to end through
   :class:`~seedlock.clients.captioning.CaptioningClient`.

Medians throughout (p50, and captions/s from the median latency, which a busy
shared machine disturbs far less than a mean); the served captions are checked
against the in-process ones before anything is timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from types import SimpleNamespace
from typing import Any

from seedlock.core.errors import UserError

MODES = (("greedy", 1), ("beam 3", 3))


def _stats(samples_ms: list[float]) -> dict[str, float]:
    from seedlock.bench import summarize

    return summarize(samples_ms, rate="captions_per_s")


def _time_in_process(captioner: Any, data: bytes, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Per mode: the in-process answer and its timings."""
    from seedlock.bench import time_samples

    answers: dict[str, Any] = {}
    stats: dict[str, dict[str, Any]] = {}
    for label, beam in MODES:

        def once(beam: int = beam) -> Any:
            return captioner.caption_bytes(data, beam=beam, max_length=args.max_length, n=1)

        answers[label] = once()
        stats[label] = _stats(time_samples(once, args.requests, args.warmup))
    return answers, stats


def _time_served(client: Any, data: bytes, beam: int, args: argparse.Namespace) -> dict[str, Any]:
    """Timings of one mode through the server, with the server's own p50 total beside them."""
    from seedlock.bench import time_samples

    timings: list[Any] = []

    def once() -> None:
        timings.append(client.caption_raw(data, beam=beam, max_length=args.max_length, n=1).timing)

    stats = _stats(time_samples(once, args.requests, args.warmup))
    stats["server_total_ms_p50"] = statistics.median(t.total_ms for t in timings[args.warmup:])
    return stats


def _bench_caption(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from seedlock.bench import write_report
    from seedlock.bench_segment import _Server, serve_command
    from seedlock.clients.captioning import CaptioningClient
    from seedlock.core.manifest import ManifestError
    from seedlock.core.sessions import SessionConfig, default_threads, resolve_providers
    from seedlock.serve.captioning import load_captioner

    if args.requests < 1 or args.warmup < 0 or args.max_length < 1:
        raise UserError("--requests and --max-length must be at least 1, --warmup at least 0")
    threads = args.threads or default_threads()
    providers = resolve_providers(args.providers)
    config = SessionConfig(providers=tuple(providers), intra_op_threads=threads, explicit_providers=bool(args.providers))
    try:
        captioner = load_captioner(args.repository, args.model, config=config)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    manifest = captioner.runtime.manifest
    ref = manifest.reference.get("task", {})
    image_path = captioner.runtime.folder / ref.get("image", "reference_image.png")
    if not image_path.is_file():
        raise UserError(f"{image_path} (the image stored with the export) is missing")
    data = image_path.read_bytes()
    print(f"model {manifest.name} v{manifest.version} ({manifest.digest[:12]}…), image {image_path.name}, "
          f"max length {args.max_length}, {threads} intra-op thread(s), {', '.join(captioner.runtime.providers)}", flush=True)

    local_answers, in_process = _time_in_process(captioner, data, args)
    del captioner  # free its sessions before the server loads its own

    served: dict[str, dict[str, Any]] = {}
    server_args = SimpleNamespace(repository=args.repository, model=args.model, providers=args.providers, instances=None)
    server = _Server(serve_command(server_args, threads, workers=4))
    try:
        with CaptioningClient(server.address, timeout=120.0, model=args.model) as client:
            for label, beam in MODES:
                answer = client.caption(data, beam=beam, max_length=args.max_length, n=1)
                local = local_answers[label]
                if [c.tokens for c in answer.captions] != [c.tokens for c in local.captions]:
                    raise UserError(f"{label}: the served caption {answer.best.text!r} differs from the in-process "
                                    f"{local.texts[0]!r}: the seed-lock is broken")
                served[label] = _time_served(client, data, beam, args)
    finally:
        server.close()

    report = {
        "bench": "caption",
        "model": manifest.name,
        "version": manifest.version,
        "digest": manifest.digest,
        "image": image_path.name,
        "max_length": args.max_length,
        "captions_per_request": 1,
        "concurrency": 1,
        "threads": threads,
        "providers": providers,
        "requests": args.requests,
        "warmup": args.warmup,
        "captions": {label: local_answers[label].texts[0] for label, _ in MODES},
        "in_process": in_process,
        "server": served,
        "server_over_in_process_p50": {label: served[label]["median_ms"] / in_process[label]["median_ms"] for label, _ in MODES},
        "environment": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "onnxruntime": ort.__version__},
    }
    print(f"{'decoding':<9} {'path':<11} {'p50 ms':>8} {'p90 ms':>8} {'captions/s':>11}")
    for label, _ in MODES:
        for path, m in (("in-process", in_process[label]), ("server", served[label])):
            print(f"{label:<9} {path:<11} {m['median_ms']:>8.2f} {m['p90_ms']:>8.2f} {m['captions_per_s']:>11.1f}")
    for label, _ in MODES:
        print(f"{label}: server / in-process p50 {report['server_over_in_process_p50'][label]:.2f}x; "
              f"caption {report['captions'][label]!r}")
    if args.json:
        write_report(report, args.json)
    return 0


def register_bench(sub: argparse._SubParsersAction) -> None:
    """Add ``caption`` to ``seedlock bench``."""
    parser = sub.add_parser(
        "caption", help="captioning: captions/s and p50 in-process vs through the server (greedy, beam 3)",
        description="Time a captioning model in-process (the server's code, no gRPC) and through `seedlock serve` + "
        "the Python client, greedy and beam 3, one request at a time; print a table, write JSON.",
    )
    parser.add_argument("--repository", required=True, help="model repository")
    parser.add_argument("--model", default="captioner", help="captioning model name (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per mode and path (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first (default: %(default)s)")
    parser.add_argument("--max-length", type=int, default=20, help="most words per caption (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads, in-process and server (default: all cores)")
    parser.add_argument("--providers", default=None, help="execution providers, as for `seedlock serve`")
    parser.add_argument("--json", default=None, help="write the report here")
    parser.set_defaults(func=_bench_caption)
