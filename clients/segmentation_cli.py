"""``seedlock client segment IMAGE --out mask.png [--overlay overlay.png]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from seedlock.core.argtypes import INT64_MAX, model_version, output_file
from seedlock.core.errors import UserError


def _segment(args: argparse.Namespace) -> int:
    from seedlock.clients.cli import _fail, connection, read_input, write_output
    from seedlock.clients.errors import SeedlockError
    from seedlock.clients.segmentation import SegmentationClient
    from seedlock.core.imaging import ImageError, decode_image, encode_png, overlay

    image_path = Path(args.image)
    data = read_input(image_path)
    with SegmentationClient(args.server, timeout=args.timeout, **connection(args)) as client:
        try:
            result = client.segment(data, model=args.model or "", version=args.version)
        except SeedlockError as exc:
            raise _fail(client.server, exc, tls=client.tls) from None
    out = write_output(args.out, result.mask_png)
    h, w = result.mask.shape
    print(f"wrote {out} ({w}x{h} class-index mask) from {result.model_name} v{result.model_version} "
          f"(digest {result.model_digest[:12]}…)")
    if args.overlay:
        try:
            image = decode_image(data)
        except ImageError as exc:  # the server decoded it, so this is unlikely
            raise UserError(f"{image_path}: {exc}") from None
        ov = write_output(args.overlay, encode_png(overlay(image, result.mask, len(result.class_names))))
        print(f"wrote {ov} (mask over the image)")
    total = max(1, h * w)
    width = max(len(n) for n in result.class_names)
    print(f"{'class':<{width}}  {'pixels':>9}  {'share':>6}")
    for name, count in zip(result.class_names, result.class_pixel_counts):
        print(f"{name:<{width}}  {count:>9}  {100 * count / total:>5.1f}%")
    return 0


def register_client(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    seg = sub.add_parser("segment", parents=[common], help="segment an image; save the class mask (and an overlay)")
    seg.add_argument("image", help="PNG or JPEG file")
    seg.add_argument("--out", type=output_file, required=True, help="where to write the class-index mask PNG")
    seg.add_argument("--overlay", type=output_file, default=None, help="also write the mask coloured over the image here")
    seg.add_argument("--model", default=None, help="model name (default: the server's only segmentation model)")
    seg.add_argument("--version", type=model_version, default=0, help=f"model version, 0 to {INT64_MAX}; 0: the latest (default: %(default)s)")
    seg.set_defaults(func=_segment)
