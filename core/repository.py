"""Reading a Triton-style model repository.

    <repository>/<model>/config.pbtxt
    <repository>/<model>/<version>/manifest.json  (+ the graph files it names)

Versions are folders with integer names. Writing lives in ``seedlock.export``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seedlock.core.manifest import MANIFEST_NAME, Manifest, ManifestError, verify_files


@dataclass(frozen=True)
class ModelVersion:
    """A verified model version on disk."""

    manifest: Manifest
    folder: Path

    def path(self, role: str = "model") -> Path:
        return self.folder / self.manifest.graph(role).file


def model_names(repository: str | Path) -> list[str]:
    root = Path(repository)
    if not root.is_dir():
        raise ManifestError(f"model repository {root} does not exist")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def version_numbers(repository: str | Path, model: str) -> list[int]:
    folder = Path(repository) / model
    if not folder.is_dir():
        raise ManifestError(f"no model {model!r} in {repository}")
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


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
            f"{folder}: manifest says {manifest.name!r} version {manifest.version}, "
            f"but it sits in {model}/{version}"
        )
    verify_files(manifest, folder)
    return ModelVersion(manifest, folder)
