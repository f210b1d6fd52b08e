"""``seedlock client segment IMAGE --out mask.png [--overlay overlay.png]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from seedlock.core.argtypes import non_negative_int
from seedlock.core.errors import UserError


def _segment(args: argparse.Namespace) -> int:
    from seedlock.clients.cli import _fail
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


def register_client(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    seg = sub.add_parser("segment", parents=[common], help="segment an image; save the class mask (and an overlay)")
    seg.add_argument("image", help="PNG or JPEG file")
    seg.add_argument("--out", required=True, help="where to write the class-index mask PNG")
    seg.add_argument("--overlay", default=None, help="also write the mask coloured over the image here")
    seg.add_argument("--model", default=None, help="model name (default: the server's only segmentation model)")
    seg.add_argument("--version", type=non_negative_int, default=0, help="model version (default: the latest)")
    seg.set_defaults(func=_segment)
