"""Reading a Triton-style model repository.

    <repository>/<model>/config.pbtxt
    <repository>/<model>/<version>/manifest.json  (+ the graph files it names)

(A plain Triton model has no manifest.json; the server loads those itself,
seedlock.serve.plain_models.)

Versions are folders named by a decimal number (ASCII digits, no leading
zeros, below 2**63). Whatever else a repository holds is skipped with a
reason (:func:`scan_models`, :func:`scan_versions`): one odd or unreadable
entry never stops the rest from loading. Reasons name paths relative to the
repository. Writing lives in ``seedlock.export``.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from seedlock.core.manifest import MANIFEST_NAME, Manifest, ManifestError, verify_files

K = TypeVar("K", str, int)
VERSION_NAME = re.compile(r"0|[1-9][0-9]{0,17}")  # ASCII only: '²'.isdigit() is True but int('²') fails
MAX_VERSION = 2**63 - 1  # Triton's and ListModels' version is an int64


@dataclass(frozen=True)
class ModelVersion:
    """A verified model version on disk."""

    manifest: Manifest
    folder: Path

    def path(self, role: str = "model") -> Path:
        return self.folder / self.manifest.graph(role).file


@dataclass
class Scan(Generic[K]):
    """What one folder of a repository holds: usable entries (``found``),
    entries that name a model or version but cannot serve (``refused``, with
    why), and other entries passed over (``skipped``, with why)."""

    found: list[K] = field(default_factory=list)
    refused: dict[K, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "a broken symbolic link"
    return exc.strerror or str(exc)


def _printable(name: str) -> str | None:
    """Why a folder name cannot name a model in a message or a response (None when it can)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    if not name.isprintable():
        return "its name holds control characters"
    return None


def _shown(name: str) -> str:
    """A folder name for a log line: as it is, or its bytes escaped (``bad\\xffname``) when odd."""
    return name if _printable(name) is None else repr(os.fsencode(name))[2:-1]


def _listing(folder: Path, label: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        raise ManifestError(f"{label} cannot be listed ({_why(exc)})") from None


def _mode(entry: os.DirEntry[str]) -> int:
    """The entry's file type, through symbolic links; OSError when it has none (loop, broken link)."""
    return entry.stat(follow_symlinks=True).st_mode


def scan_models(repository: str | Path) -> Scan[str]:
    """The model folders of ``repository``. Raises :class:`ManifestError` only
    when the repository itself is missing or cannot be listed."""
    root = Path(repository)
    if not root.is_dir():
        raise ManifestError(f"model repository {root} does not exist")
    scan: Scan[str] = Scan()
    for entry in _listing(root, f"model repository {root}"):
        name = entry.name
        if name.startswith("."):
            continue
        bad_name = _printable(name)
        if bad_name:
            scan.skipped[_shown(name)] = f"{bad_name}; skipped"
            continue
        try:
            mode = _mode(entry)
        except OSError as exc:
            scan.refused[name] = f"{name}: {_why(exc)}, not a model folder"
            continue
        if stat.S_ISDIR(mode):
            scan.found.append(name)
        elif not stat.S_ISREG(mode):
            scan.skipped[name] = "not a model folder (a special file); skipped"
    return scan


def scan_versions(repository: str | Path, model: str) -> Scan[int]:
    """The version folders of ``model``. Raises :class:`ManifestError` when the
    model folder is missing or cannot be listed."""
    folder = Path(repository) / model
    if not folder.is_dir():
        raise ManifestError(f"no model {model!r} in {repository}")
    scan: Scan[int] = Scan()
    for entry in _listing(folder, f"{model}/"):
        name = entry.name
        if name.startswith("."):
            continue
        numbered = VERSION_NAME.fullmatch(name) is not None
        try:
            mode = _mode(entry)
        except OSError as exc:
            if numbered:
                scan.refused[int(name)] = f"{model}/{name}: {_why(exc)}, not a version folder"
            else:
                scan.skipped[name] = f"{_why(exc)}; skipped"
            continue
        if not stat.S_ISDIR(mode):
            if numbered:
                scan.refused[int(name)] = f"{model}/{name} is a file, not a version folder"
            continue  # config.pbtxt, labels, notes: files beside the versions are the model's own business
        if numbered:
            scan.found.append(int(name))
        else:
            scan.skipped[_shown(name)] = ("not a version folder (versions are named 1, 2, 3, … in ASCII digits, "
                                   "without leading zeros); skipped")  # fmt: skip
    scan.found.sort()
    return scan


def model_names(repository: str | Path) -> list[str]:
    """The model folders of ``repository`` (see :func:`scan_models` for what is passed over)."""
    return scan_models(repository).found


def version_numbers(repository: str | Path, model: str) -> list[int]:
    """The version folders of ``model`` (see :func:`scan_versions` for what is passed over)."""
    return scan_versions(repository, model).found


def load_version(repository: str | Path, model: str, version: int | None = None) -> ModelVersion:
    """Load and verify one version (the highest when ``version`` is None)."""
    versions = version_numbers(repository, model)
    if not versions:
        raise ManifestError(f"model {model!r} in {repository} has no numbered version folder")
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise ManifestError(f"model {model!r} has no version {version} (has {versions})")
    folder = Path(repository) / model / str(version)
    manifest = Manifest.load(folder / MANIFEST_NAME)
    if manifest.name != model or manifest.version != version:
        raise ManifestError(
            f"{model}/{version}: manifest says {manifest.name!r} version {manifest.version!r}, "
            f"but it sits in {model}/{version}"
        )
    verify_files(manifest, folder)
    return ModelVersion(manifest, folder)
