"""``seedlock bench compose``: events generated per second, in-process vs through the server.

For one composition model, one genre and one seed it times, one request at a time:

1. ``generate``: :meth:`OrtComposer.compose` in-process (encoder + one
   decoder-step call and two draws per event): the floor;
2. ``pipeline``: the whole request in-process (validation, generation,
   MusicXML and MIDI encoding), no gRPC;
3. ``server_unary`` / ``server_stream``: a server started in this process on
   127.0.0.1, called through :class:`~seedlock.clients.CompositionClient`
   (``Compose``, and ``ComposeStream`` read to its end).

Medians (and p90) of each, and events/s = length / median seconds. It also
checks that the served melody is the in-process one for the seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
from pathlib import Path

from seedlock.core.errors import UserError


def _bench_compose(args: argparse.Namespace) -> int:
    import numpy as np
    import onnxruntime as ort

    from seedlock.bench import time_calls, write_report
    from seedlock.clients.base import NO_RETRY
    from seedlock.clients.composition import CompositionClient
    from seedlock.core.composition import CompositionSpec
    from seedlock.core.manifest import ManifestError
    from seedlock.core.repository import load_version
    from seedlock.serve.composition import OrtComposer, compose_request
    from seedlock.serve.server import start_server

    if args.requests < 1 or args.length < 1:
        raise UserError("--requests and --length must be at least 1")
    try:
        mv = load_version(Path(args.repository), args.model, args.version or None)
    except (ManifestError, FileNotFoundError) as exc:
        raise UserError(f"cannot load {args.model!r} from {args.repository}: {exc}") from None
    folder = mv.folder
    if mv.manifest.task != CompositionSpec.TASK:
        raise UserError(f"model {args.model!r} is a {mv.manifest.task!r} model, not a composition model")
    composer = OrtComposer.from_folder(folder, threads=args.threads)
    spec = composer.spec
    genre = args.genre or spec.genres[0]
    if genre not in spec.genres:
        raise UserError(f"unknown genre {genre!r}; this model knows: {', '.join(spec.genres)}")
    if args.length > spec.length_limit:
        raise UserError(f"--length is over the model's limit of {spec.length_limit}")

    server = start_server(args.repository, host="127.0.0.1", port=0, models=[args.model],
                          threads=args.threads, workers=4)
    try:
        with CompositionClient(server.address, timeout=300, retry=NO_RETRY, model=args.model) as client:
            request = client.request(genre=genre, length=args.length, seed=args.seed, version=args.version)
            warmup = min(2, args.requests)
            results = {
                "generate": time_calls(lambda: composer.compose(genre, args.length, spec.default_sampling, args.seed), args.requests, warmup),
                "pipeline": time_calls(lambda: compose_request(composer, spec, request), args.requests, warmup),
                "server_unary": time_calls(lambda: client.compose_raw(request), args.requests, warmup),
                "server_stream": time_calls(lambda: list(client.compose_stream_raw(request)), args.requests, warmup),
            }
            served = client.compose(genre=genre, length=args.length, seed=args.seed, version=args.version).events
    finally:
        server.stop(grace=1.0)
    same = bool(np.array_equal(served, composer.compose(genre, args.length, spec.default_sampling, args.seed)))
    for stats in results.values():
        stats["events_per_s"] = args.length / (stats["median_ms"] / 1e3)
    report = {
        "bench": "compose",
        "model": args.model,
        "model_version": composer.manifest.version,
        "model_digest": composer.manifest.digest,
        "genre": genre,
        "length": args.length,
        "seed": args.seed,
        "sampling": dataclasses.asdict(spec.default_sampling),
        "threads": args.threads,
        "results": results,
        "server_over_generate_median": results["server_unary"]["median_ms"] / results["generate"]["median_ms"],
        "served_equals_in_process": same,
        "versions": {"onnxruntime": ort.__version__, "python": platform.python_version()},
        "machine": platform.machine(),
    }
    print(f"{'path':<14} {'median ms':>10} {'p90 ms':>10} {'events/s':>10}")
    for name, stats in results.items():
        print(f"{name:<14} {stats['median_ms']:>10.2f} {stats['p90_ms']:>10.2f} {stats['events_per_s']:>10.0f}")
    print(f"served melody == in-process melody (seed {args.seed}): {same}")
    write_report(report, args.json)
    if not same:
        raise UserError("the served melody differs from the in-process one: the seed-lock is broken")
    return 0


def register_bench(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "compose", help="composition: events/s in-process vs through the server",
        description="Time melody generation in-process (ONNX Runtime) and through a local server (unary and "
                    "streaming), one request at a time; report medians and events/s.",
    )
    parser.add_argument("--repository", required=True, help="model repository holding the composer")
    parser.add_argument("--model", default="composer", help="model name (default: %(default)s)")
    parser.add_argument("--version", type=int, default=0, help="model version (default: the latest)")
    parser.add_argument("--genre", default=None, help="genre to compose (default: the model's first)")
    parser.add_argument("--length", type=int, default=96, help="events per request (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per path (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="sampling seed (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default: %(default)s)")
    parser.add_argument("--json", default=None, help="write the report here (default: print it)")
    parser.set_defaults(func=_bench_compose)
