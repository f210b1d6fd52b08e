"""``seedlock client fingerprints``: generate fake fingerprints, compare two sets.

    seedlock client fingerprints generate --count 16 --seed 3 --out DIR [--quality Q1] [--model NAME]
    seedlock client fingerprints compare DIR_A DIR_B [--threshold 128] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from seedlock.core.argtypes import INT32_MAX, INT64_MAX, UINT64_MAX, int_range, model_version, output_dir, output_file, seed
from seedlock.core.errors import UserError

FILE_PATTERN = "fp_{:03d}.png"
_OURS = re.compile(r"fp_\d{3,}\.png")


def _generate(args: argparse.Namespace) -> int:
    from seedlock.clients.cli import _fail, connection
    from seedlock.clients.errors import SeedlockError
    from seedlock.clients.fingerprints import FingerprintsClient

    with FingerprintsClient(args.server, timeout=args.timeout, **connection(args)) as client:
        try:
            result = client.generate(args.count, seed=args.seed, quality=args.quality or "",
                                     model=args.model or "", version=args.version)
        except SeedlockError as exc:
            raise _fail(client.server, exc, tls=client.tls) from None
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        names = [FILE_PATTERN.format(i) for i in range(len(result.images_png))]
        for name, png in zip(names, result.images_png):
            (out / name).write_bytes(png)
        # fp_*.png left from a larger earlier run would join this set in a later `compare DIR`.
        stale = [p for p in out.iterdir() if _OURS.fullmatch(p.name) and p.name not in set(names)]
        for p in stale:
            p.unlink()
    except OSError as exc:
        raise UserError(f"cannot write into {out}: {exc.strerror or exc}") from None
    span = names[0] if len(names) == 1 else f"{names[0]} … {names[-1]}"
    print(f"wrote {len(names)} fingerprints ({result.width}x{result.height} grey PNG) to {out}/: {span}")
    print(f"seed {result.seed}, quality {result.quality}, from {result.model_name} v{result.model_version} "
          f"(digest {result.model_digest[:12]}…)")
    if stale:
        print(f"removed {len(stale)} fp_*.png left from an earlier, larger run")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from seedlock.clients.cli import _fail, connection, write_output
    from seedlock.clients.errors import SeedlockError
    from seedlock.clients.fingerprints import FingerprintsClient, image_files
    from seedlock.core.similarity import format_table

    files_a, files_b = image_files(args.set_a), image_files(args.set_b)
    try:
        set_a, set_b = [p.read_bytes() for p in files_a], [p.read_bytes() for p in files_b]
    except OSError as exc:
        raise UserError(f"cannot read {exc.filename}: {exc.strerror}") from None
    with FingerprintsClient(args.server, timeout=args.timeout, **connection(args)) as client:
        try:
            result = client.compare(set_a, set_b, threshold=args.threshold)
        except SeedlockError as exc:
            raise _fail(client.server, exc, tls=client.tls) from None
    r = result.similarity
    h, w = r["image_shape"]
    print(f"A: {args.set_a} ({r['n_a']} images)   B: {args.set_b} ({r['n_b']} images)   {w}x{h}, {r['pairs']} pairs")
    print(format_table({"A-B": r}))
    print(f"binarization: {r['binarization']}")
    if args.json:
        # Full-precision floats: json round-trips them exactly, so answers compare bit for bit.
        payload = {"set_a": str(args.set_a), "set_b": str(args.set_b), "binarize_threshold": result.binarize_threshold, **r}
        out = write_output(args.json, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())
        print(f"wrote {out}")
    return 0


def register_client(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``fingerprints generate`` and ``fingerprints compare`` to ``seedlock client``."""
    from seedlock.core.fingerprints import DEFAULT_MAX_COUNT  # the server's default limit

    fp = sub.add_parser("fingerprints", help="generate fake fingerprints; compare two sets of fingerprint images",
                        description="Call the server's fingerprint service: generate seed-locked fake fingerprints, "
                        "or compare two sets of images with the four similarity measures.")
    cmds = fp.add_subparsers(dest="fingerprints_command", metavar="COMMAND", required=True)

    gen = cmds.add_parser("generate", parents=[common], help="generate fingerprints into a folder (fp_000.png, ...)",
                          description="Generate COUNT fingerprints and write them as fp_000.png, fp_001.png, ... "
                          "The same seed, count, quality and model give the same bytes.")
    gen.add_argument("--count", type=int_range(1, INT32_MAX), required=True,
                     help=f"images to generate, 1 up to the model's limit ({DEFAULT_MAX_COUNT} unless its manifest says otherwise)")
    gen.add_argument("--seed", type=seed, default=None,
                     help=f"seed of the latents, 0 to {UINT64_MAX} (default: the server picks one and says which)")
    gen.add_argument("--quality", default=None, help="Q1, Q2, Q3 or Q5 for a per-quality model (default: none, for an all-quality model)")
    gen.add_argument("--out", type=output_dir, required=True, help="folder to write the PNGs into (fp_*.png from an earlier run are replaced)")
    gen.add_argument("--model", default=None, help="model name (default: the server's only fingerprint model)")
    gen.add_argument("--version", type=model_version, default=0, help=f"model version, 0 to {INT64_MAX}; 0: the latest (default: %(default)s)")
    gen.set_defaults(func=_generate)

    cmp = cmds.add_parser("compare", parents=[common], help="the four similarity measures between two folders of images",
                          description="Send every image of two folders (one size throughout) and print mean Hamming "
                          "distance, histogram Pearson correlation, IoU and the per-image mean/std summary.")
    cmp.add_argument("set_a", help="folder of images (or one image file): set A")
    cmp.add_argument("set_b", help="folder of images (or one image file): set B")
    cmp.add_argument("--threshold", type=int_range(1, 255), default=None, help="ink = grey < threshold, 1 to 255 (default: 128)")
    cmp.add_argument("--json", type=output_file, default=None, help="also write the measures as JSON here")
    cmp.set_defaults(func=_compare)
