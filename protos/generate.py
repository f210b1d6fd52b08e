"""Regenerate the Python modules for the ``.proto`` files in this folder.

    python -m seedlock.protos.generate            # rewrite the committed modules
    python -m seedlock.protos.generate --check    # exit 1 if they are stale

Needs ``grpcio-tools`` (the ``dev`` extra). The output is committed, so the
server and clients need only ``grpcio`` and ``protobuf`` at run time. protoc's
output is post-processed so that it lives under ``seedlock.protos``:

* imports between generated modules become ``seedlock.protos.<package>...``;
* messages are registered in :data:`seedlock.protos.pool.POOL` rather than
  protobuf's default pool (see :mod:`seedlock.protos.pool` for why).

protoc stamps the generated code with its protobuf and grpcio versions and the
code refuses older runtimes; the package's dependency floors must stay at or
above those (``GENCODE_PROTOBUF`` / ``GENCODE_GRPC`` below are checked by the
tests).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
# Versions stamped by the grpcio-tools release that produced the committed code.
GENCODE_PROTOBUF = "6.33.5"
GENCODE_GRPC = "1.81.1"
_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files(root: Path = PROTO_ROOT) -> list[str]:
    """The .proto sources, relative to ``root``, in a stable order."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.proto"))


def _fix(text: str, packages: set[str], module: str) -> str:
    prefix = "seedlock.protos."
    pkg_alt = "|".join(re.escape(p) for p in sorted(packages))
    # `from inference import grpc_service_pb2 as ...` -> `from seedlock.protos.inference import ...`
    text = re.sub(rf"^from ((?:{pkg_alt})(?:\.\w+)*) import (\w+_pb2)\b", rf"from {prefix}\1 import \2", text, flags=re.M)
    text = re.sub(rf"^import ((?:{pkg_alt})(?:\.\w+)*\.\w+_pb2)\b", rf"import {prefix}\1", text, flags=re.M)
    if module.endswith("_pb2"):
        text = text.replace(
            "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, '" + module.removeprefix(prefix) + "',",
            "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, '" + module + "',",
        )
        text = text.replace(
            "from google.protobuf import descriptor_pool as _descriptor_pool\n",
            "from google.protobuf import descriptor_pool as _descriptor_pool\nfrom seedlock.protos import pool as _seedlock_pool\n",
        )
        text = text.replace("_descriptor_pool.Default().AddSerializedFile(", "_seedlock_pool.POOL.AddSerializedFile(")
    return text


def generate(out_dir: str | Path, root: Path = PROTO_ROOT) -> list[str]:
    """Generate the modules for every .proto under ``root`` into ``out_dir``;
    returns their paths relative to ``out_dir``."""
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - dev extra missing
        raise SystemExit("grpcio-tools is not installed: pip install 'seedlock[dev]'") from exc
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = proto_files(root)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {sources}")
    packages = {s.split("/")[0] for s in sources}
    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.name.endswith(_SUFFIXES))
    for rel in written:
        path = out_dir / rel
        module = "seedlock.protos." + rel.rsplit(".", 1)[0].replace("/", ".")
        path.write_text(_fix(path.read_text(), packages, module))
    return written


def stale(root: Path = PROTO_ROOT) -> list[str]:
    """Generated modules that differ from what the sources produce now (or are missing)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(tmp, root)
        return [rel for rel in fresh if not (root / rel).is_file() or (root / rel).read_bytes() != (Path(tmp) / rel).read_bytes()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seedlock.protos.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale modules (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for rel in bad:
            print(f"stale: protos/{rel}")
        return 1 if bad else 0
    with tempfile.TemporaryDirectory() as tmp:
        for rel in generate(tmp):
            target = PROTO_ROOT / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / rel, target)
            print(f"wrote protos/{rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
