"""Loading a model repository into runtimes, and finding the runtime a request names.

Every version of every model is verified (manifest digests) and loaded; a
version that fails is refused with its reason logged and kept for
``seedlock client models``, and the rest still serve.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Generic, Sequence, TypeVar

from seedlock.core import tasks
from seedlock.core.errors import UserError
from seedlock.core.manifest import Manifest, ManifestError
from seedlock.core.repository import load_version, model_names, version_numbers
from seedlock.core.sessions import SessionConfig
from seedlock.serve.admission import Admission
from seedlock.serve.errors import invalid, not_found, unavailable
from seedlock.serve.runtime import ModelRuntime, load_runtime

log = logging.getLogger("seedlock.serve")


@dataclass
class Registry:
    """The loaded models: ``runtimes[name][version]``, refusals with reasons,
    and one in-flight bound per model."""

    repository: Path
    config: SessionConfig
    max_inflight: int
    concurrency: int = 2
    runtimes: dict[str, dict[int, ModelRuntime]] = field(default_factory=dict)
    refused: dict[str, dict[int | None, str]] = field(default_factory=dict)
    admission: dict[str, Admission] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted(set(self.runtimes) | set(self.refused))

    def ready_names(self) -> list[str]:
        return sorted(n for n, v in self.runtimes.items() if v)

    def ready_versions(self, name: str) -> list[int]:
        return sorted(self.runtimes.get(name, {}))

    def get(self, name: str, version: int | str | None = None) -> ModelRuntime:
        """The runtime for ``name`` at ``version`` (None, 0 or "": the highest
        ready one). NOT_FOUND for an unknown model or version, UNAVAILABLE for
        one that was refused at load."""
        number = parse_version(version)
        if name not in self.runtimes and name not in self.refused:
            known = ", ".join(self.names()) or "none"
            raise not_found(f"unknown model {name!r} (this server has: {known})")
        versions = self.runtimes.get(name, {})
        refused = self.refused.get(name, {})
        if number is None:
            if versions:
                return versions[max(versions)]
            reasons = "; ".join(f"v{v}: {r}" if v is not None else r for v, r in sorted(refused.items(), key=lambda i: i[0] or 0))
            raise unavailable(f"model {name!r} has no ready version ({reasons})")
        if number in versions:
            return versions[number]
        if number in refused:
            raise unavailable(f"model {name!r} version {number} was refused at load: {refused[number]}")
        raise not_found(f"model {name!r} has no version {number} (ready: {sorted(versions) or 'none'})")

    def slot(self, name: str, timeout: float | None = None) -> ContextManager[None]:
        """Admit one request to the model (see :class:`~seedlock.serve.admission.Admission`)."""
        return self.admission[name].slot(timeout)


def check_task(manifest: Manifest) -> None:
    """A model of a task the table knows must fit the task's spec, so a bad
    model is refused at start-up, not on its first request. Models of other
    tasks are served over KServe v2 only."""
    task = tasks.find(manifest.task)
    if task is not None:
        task.spec_class().from_manifest(manifest)


def parse_version(version: int | str | None) -> int | None:
    if version is None or version == "" or version == 0:
        return None
    if isinstance(version, int):
        number = version
    else:
        try:
            number = int(version.strip())
        except ValueError:
            raise invalid(f"model version {version!r} is not a number") from None
    if number < 0:
        raise invalid(f"model version {number} is negative")
    return number or None


def load_repository(
    repository: str | Path,
    config: SessionConfig,
    models: Sequence[str] | None = None,
    max_inflight: int = 16,
    concurrency: int = 2,
) -> Registry:
    """Verify and load the repository's models (all, or those named).
    ``concurrency``: requests per model computing at once (see :meth:`Registry.slot`)."""
    root = Path(repository)
    try:
        available = model_names(root)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    if models:
        unknown = [m for m in models if m not in available]
        if unknown:
            raise UserError(f"model(s) {', '.join(unknown)} not in {root} (it has: {', '.join(available) or 'nothing'})")
        available = [m for m in available if m in models]
    registry = Registry(root, config, max_inflight, max(1, concurrency))
    for name in available:
        registry.admission[name] = Admission(f"model {name!r}", max_inflight, registry.concurrency)
        try:
            versions = version_numbers(root, name)
        except ManifestError as exc:
            registry.refused.setdefault(name, {})[None] = str(exc)
            log.error("refused model %s: %s", name, exc)
            continue
        if not versions:
            registry.refused.setdefault(name, {})[None] = f"{root / name} has no numbered version folder"
            log.error("refused model %s: no numbered version folder", name)
        for number in versions:
            try:
                mv = load_version(root, name, number)
                check_task(mv.manifest)
                runtime = load_runtime(mv.manifest, mv.folder, config)
            except (ManifestError, ValueError) as exc:
                registry.refused.setdefault(name, {})[number] = str(exc)
                log.error("refused %s version %d: %s", name, number, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. onnxruntime cannot parse the graph
                reason = f"{type(exc).__name__}: {exc}"
                registry.refused.setdefault(name, {})[number] = reason
                log.error("refused %s version %d: %s", name, number, reason)
                continue
            registry.runtimes.setdefault(name, {})[number] = runtime
            log.info(
                "loaded %s version %d (%s, digest %s…) on %s",
                name, number, runtime.task, runtime.digest[:12], ", ".join(runtime.providers),
            )
    return registry


T = TypeVar("T")


class TaskModels(Generic[T]):
    """The registry's models of one task, each with what its service prepared
    from it at start-up (a checked spec, a decoder, …), and the request-time
    lookup every task service shares."""

    def __init__(self, registry: Registry, task: str, label: str, prepare: Callable[[ModelRuntime], T]) -> None:
        self.registry = registry
        self.label = label
        self.prepared: dict[tuple[str, int], T] = {
            (name, v): prepare(rt)
            for name, versions in registry.runtimes.items()
            for v, rt in versions.items()
            if rt.task == task
        }

    def _default_name(self) -> str:
        names = sorted({name for name, _ in self.prepared})
        if len(names) == 1:
            return names[0]
        if not names:
            raise invalid(f"this server has no {self.label} model")
        raise invalid(f"this server has several {self.label} models; name one in model_name: {', '.join(names)}")

    def resolve(self, name: str, version: int | str | None) -> tuple[ModelRuntime, T]:
        """The runtime and prepared object for a request's model (its only
        model of this task when ``name`` is empty)."""
        name = name or self._default_name()
        runtime = self.registry.get(name, version)
        prepared = self.prepared.get((runtime.name, runtime.version))
        if prepared is None:
            raise invalid(f"model {name!r} is a {runtime.task!r} model, not a {self.label} model")
        return runtime, prepared
