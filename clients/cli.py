"""``seedlock client``: call a running server from the shell.

    seedlock client segment IMAGE --out mask.png [--overlay overlay.png] [--server host:port]
    seedlock client caption IMAGE [--beam 3] [--n 3]
    seedlock client compose --genre bach --length 96 --seed 7 --out song.musicxml [--midi song.mid]
    seedlock client fingerprints generate --count 16 --seed 3 --out DIR
    seedlock client fingerprints compare DIR_A DIR_B
    seedlock client health [--model NAME]
    seedlock client models
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seedlock.core.errors import UserError


def _fail(server: str, exc: Exception) -> UserError:
    """One actionable line for a failed call."""
    from seedlock.clients.errors import SeedlockError, Unavailable

    if isinstance(exc, Unavailable):
        return UserError(f"cannot reach a seedlock server at {server} ({exc.message}); is `seedlock serve` running there?")
    if isinstance(exc, SeedlockError):
        return UserError(f"server at {server} answered {exc.code.name}: {exc.message}")
    return UserError(str(exc))


def _segment(args: argparse.Namespace) -> int:
    from seedlock.clients.errors import SeedlockError
    from seedlock.clients.segmentation import SegmentationClient
    from seedlock.core.imaging import ImageError, decode_image, overlay, write_png

    image_path = Path(args.image)
    if not image_path.is_file():
        raise UserError(f"image {image_path} does not exist")
    data = image_path.read_bytes()
    with SegmentationClient(args.server, timeout=args.timeout) as client:
        try:
            result = client.segment(data, model=args.model or "", version=args.version)
        except SeedlockError as exc:
            raise _fail(client.server, exc) from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(result.mask_png)
    h, w = result.mask.shape
    print(f"wrote {out} ({w}x{h} class-index mask) from {result.model_name} v{result.model_version} "
          f"(digest {result.model_digest[:12]}…)")
    if args.overlay:
        try:
            image = decode_image(data)
        except ImageError as exc:  # the server decoded it, so this is unlikely
            raise UserError(f"{image_path}: {exc}") from None
        ov = Path(args.overlay)
        ov.parent.mkdir(parents=True, exist_ok=True)
        write_png(ov, overlay(image, result.mask, len(result.class_names)))
        print(f"wrote {ov} (mask over the image)")
    total = max(1, h * w)
    width = max(len(n) for n in result.class_names)
    print(f"{'class':<{width}}  {'pixels':>9}  {'share':>6}")
    for name, count in zip(result.class_names, result.class_pixel_counts):
        print(f"{name:<{width}}  {count:>9}  {100 * count / total:>5.1f}%")
    return 0


def _health(args: argparse.Namespace) -> int:
    from seedlock.clients.base import BaseClient
    from seedlock.clients.errors import NotFound, SeedlockError

    with BaseClient(args.server, timeout=args.timeout) as client:
        try:
            status = client.health(args.model or "")
        except NotFound:
            raise UserError(f"server at {client.server} has no model {args.model!r}") from None
        except SeedlockError as exc:
            raise _fail(client.server, exc) from None
    print(f"{args.model or 'server'}: {status}")
    return 0 if status == "SERVING" else 1


def _models(args: argparse.Namespace) -> int:
    from seedlock.clients.base import BaseClient
    from seedlock.clients.errors import SeedlockError

    with BaseClient(args.server, timeout=args.timeout) as client:
        try:
            listing = client.list_models()
        except SeedlockError as exc:
            raise _fail(client.server, exc) from None
    rows = []
    for model in listing.models:
        for v in model.versions:
            if v.ready:
                rows.append((model.name, str(v.version), "ready", v.task, v.digest[:16], ",".join(p.removesuffix("ExecutionProvider") for p in v.providers)))
            else:
                rows.append((model.name, str(v.version or "-"), "REFUSED", "", "", v.reason))
    header = ("model", "version", "state", "task", "digest", "provider / reason")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  " + header[5])
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
    return 0


# Task client commands beyond segmentation: each module provides
# ``register_client(client_subparsers, common_parser)``. Adding one is one line here.
TASK_CLIENT_MODULES: tuple[str, ...] = (
    "seedlock.clients.captioning_cli",
    "seedlock.clients.composition_cli",
    "seedlock.clients.fingerprints_cli",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "client", help="call a running server (segment, caption, compose, fingerprints, health, models)",
        description="Call a running seedlock server. --server defaults to $SEEDLOCK_SERVER or localhost:8001.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", default=None, help="host:port of the server (default: $SEEDLOCK_SERVER or localhost:8001)")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default: %(default)s)")
    sub = parser.add_subparsers(dest="client_command", metavar="COMMAND", required=True)

    seg = sub.add_parser("segment", parents=[common], help="segment an image; save the class mask (and an overlay)")
    seg.add_argument("image", help="PNG or JPEG file")
    seg.add_argument("--out", required=True, help="where to write the class-index mask PNG")
    seg.add_argument("--overlay", default=None, help="also write the mask coloured over the image here")
    seg.add_argument("--model", default=None, help="model name (default: the server's only segmentation model)")
    seg.add_argument("--version", type=int, default=0, help="model version (default: the latest)")
    seg.set_defaults(func=_segment)

    health = sub.add_parser("health", parents=[common], help="the server's (or one model's) health; exit 0 when SERVING")
    health.add_argument("--model", default=None, help="a model name (default: the whole server)")
    health.set_defaults(func=_health)

    models = sub.add_parser("models", parents=[common], help="list models: versions, task, digest, provider")
    models.set_defaults(func=_models)

    import importlib

    for module in TASK_CLIENT_MODULES:
        importlib.import_module(module).register_client(sub, common)
