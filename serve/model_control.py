"""Triton's model-control modes (``--model-control-mode``):

* ``none``: the models loaded at start-up serve until the server stops;
  RepositoryModelLoad/Unload answer UNAVAILABLE, as Triton's do.
* ``explicit``: only the ``--load-model`` models load at start-up (all with
  ``--load-model '*'``); RepositoryModelLoad loads a model's versions (new
  ones, and ones refused before), RepositoryModelUnload drops them.
* ``poll``: every ``--repository-poll-secs`` the repository is scanned again;
  version folders that appeared are loaded, ones that disappeared are dropped.

A version that is dropped stops taking requests at once; the requests
already queued or running on it finish there (its scheduler drains) before
it is freed. Changes run one at a time, on the server's event loop; the
loading itself (verification, sessions, proofs) runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Sequence

from seedlock.core.errors import UserError
from seedlock.core.manifest import ManifestError
from seedlock.core.repository import scan_models, scan_versions
from seedlock.core.sessions import SessionConfig
from seedlock.serve.errors import echo, invalid, not_found, unavailable
from seedlock.serve.repository import Registry, policy_versions, relative

log = logging.getLogger("seedlock.serve")

MODES = ("none", "poll", "explicit")
DEFAULT_POLL_SECS = 15.0
UNLOADED = "unloaded (RepositoryModelUnload); load it again with RepositoryModelLoad"
DRAIN_GRACE_S = 30.0  # in-flight requests on a dropped version get this long to finish


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: str
    state: str  # Triton's words: READY, UNAVAILABLE ("" for a model never loaded)
    reason: str


class ModelControl:
    def __init__(self, registry: Registry, mode: str = "none", poll_secs: float = DEFAULT_POLL_SECS,
                 models: Sequence[str] | None = None,
                 on_change: Callable[[str], Awaitable[None]] | None = None) -> None:  # fmt: skip
        if mode not in MODES:
            raise ValueError(f"model control mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.registry = registry
        self.mode = mode
        self.poll_secs = poll_secs
        self.models = list(models or [])  # poll: only these (--models), when given
        self.on_change = on_change
        self._lock: asyncio.Lock | None = None
        self._refused_at: dict[tuple[str, int], tuple] = {}  # poll: a refused version's folder when it was refused
        self._poller: asyncio.Task | None = None

    # -- start and stop (on the server's event loop) ------------------------------
    def start(self) -> None:
        self._lock = asyncio.Lock()
        if self.mode == "poll":
            self._poller = asyncio.create_task(self._poll_forever(), name="seedlock-repository-poll")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)

    # -- the RPCs -------------------------------------------------------------------
    def _explicit_only(self) -> None:
        if self.mode != "explicit":
            # Triton's answer in NONE and POLL mode, with what to do about it.
            raise unavailable(
                "explicit model load / unload is not allowed if polling is enabled "
                f"(this server runs --model-control-mode {self.mode}; start it with --model-control-mode explicit)"
            )

    def _on_disk(self) -> list[str]:
        try:
            scan = scan_models(self.registry.repository)
        except ManifestError as exc:
            raise unavailable(f"the model repository cannot be read: {exc}") from None
        return sorted([*scan.found, *scan.refused])

    async def load(self, name: str) -> None:
        self._explicit_only()
        if not name:
            raise invalid("model_name is empty; name the model to load")
        if name not in await asyncio.to_thread(self._on_disk):
            raise not_found(f"no model {echo(name)} in the model repository")
        assert self._lock is not None
        async with self._lock:
            await self._sync(name)
        if not self.registry.runtimes.get(name):
            raise invalid(f"failed to load {name!r}: {self.registry.refusal(name) or 'it has no version folder'}")

    async def unload(self, name: str) -> None:
        self._explicit_only()
        if not name:
            raise invalid("model_name is empty; name the model to unload")
        reg = self.registry
        if name not in reg.runtimes and name not in reg.refused:
            raise not_found(f"model {echo(name)} is not loaded (nothing to unload)")
        assert self._lock is not None
        async with self._lock:
            await self._drop(name, UNLOADED)

    async def index(self, ready_only: bool) -> list[IndexEntry]:
        """Every model of the repository: each loaded version READY, each refused
        one UNAVAILABLE with its reason, models on disk never loaded with no state (as Triton).
        The folder is read on a thread; the registry on the loop, where it changes."""
        on_disk = await asyncio.to_thread(self._on_disk)
        reg = self.registry
        entries: list[IndexEntry] = []
        for name in sorted(set(reg.names()) | set(on_disk)):
            rows = [IndexEntry(name, str(v), "READY", "") for v in sorted(reg.runtimes.get(name, {}))]
            if not ready_only:
                refused = reg.refused.get(name, {})
                rows += [IndexEntry(name, "" if v is None else str(v), "UNAVAILABLE", why)
                         for v, why in sorted(refused.items(), key=lambda i: i[0] or 0)]  # fmt: skip
                if not rows:
                    rows = [IndexEntry(name, "", "", "")]
            entries += rows
        return entries

    # -- changes ----------------------------------------------------------------------
    async def _sync(self, name: str, retry_refused: bool = True) -> None:
        """Bring model ``name`` in line with its folder: load the versions that
        are new (and, unless polling, those refused before), drop those whose folder is gone."""
        reg = self.registry
        try:
            versions = await asyncio.to_thread(scan_versions, reg.repository, name)
        except ManifestError as exc:
            await self._drop(name, str(exc))
            return
        try:  # the versions config.pbtxt's version_policy serves, read again on every change
            found = await asyncio.to_thread(policy_versions, reg.repository, name, versions.found)
        except ManifestError as exc:  # what serves now keeps serving (as Triton keeps a model whose reload failed)
            if retry_refused:
                raise invalid(f"failed to load {name!r}: {relative(str(exc), reg.repository)}") from None
            log.warning("model control: %s; %s stays as it is", exc, name)
            return
        loaded = set(reg.runtimes.get(name, {}))
        before = reg.refused.get(name, {})
        stamps = {v: await asyncio.to_thread(_stamp, reg.repository / name / str(v)) for v in found if v not in loaded}
        # Polling retries a refused version only once its folder changed (a copy that was still going on, a fix).
        wanted = [v for v in stamps if retry_refused or v not in before or self._refused_at.get((name, v)) != stamps[v]]
        scratch = await asyncio.to_thread(reg.stage_versions, name, wanted) if wanted else None
        changed = False
        if scratch is not None:
            for number, runtime in sorted(scratch.runtimes.get(name, {}).items()):
                reg.add_version(runtime, scratch.serving[(name, number)])
                log.info("model control: loaded %s version %d", name, number)
                changed = True
            for number, why in scratch.refused.get(name, {}).items():
                reg.refuse(name, number, why, scratch.refused_tasks.get(name))
                self._refused_at[(name, number)] = stamps[number]
        for number, why in versions.refused.items():
            if number not in loaded and before.get(number) != why:
                reg.refuse(name, number, why)
        gone = sorted(loaded - set(found))
        for number in gone:
            log.info("model control: version %d of %s left the repository (or its version_policy); draining it", number, name)
            await reg.remove_version(name, number, DRAIN_GRACE_S)
            changed = True
        if not versions.found and not versions.refused and not reg.runtimes.get(name):
            reg.refuse(name, None, f"{name}/ has no version folder (named 1, 2, 3, …)")
        if changed:
            await self._changed(name)

    async def _drop(self, name: str, reason: str) -> None:
        reg = self.registry
        numbers = sorted(reg.runtimes.get(name, {}))
        await asyncio.gather(*(reg.remove_version(name, n, DRAIN_GRACE_S) for n in numbers))
        reg.runtimes.pop(name, None)
        reg.refused[name] = {None: relative(reason, reg.repository)}
        log.info("model control: %s %s", name, reason)
        await self._changed(name)

    async def _changed(self, name: str) -> None:
        if self.on_change is not None:
            await self.on_change(name)

    async def poll_once(self) -> None:
        """One scan of the repository (poll mode): new versions loaded, removed ones dropped."""
        assert self._lock is not None
        async with self._lock:
            on_disk = await asyncio.to_thread(self._on_disk)
            names = [n for n in on_disk if not self.models or n in self.models]
            for name in names:
                await self._sync(name, retry_refused=False)
            for name in sorted(set(self.registry.runtimes) - set(on_disk)):
                if self.registry.runtimes.get(name):
                    await self._drop(name, "its folder left the model repository")

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_secs)
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bad scan must not stop polling
                log.exception("model control: polling the repository failed; trying again in %ss", self.poll_secs)


def empty_registry(repository: str | Path, config: SessionConfig, threads: int, max_queue: int,
                   instances: int | None, workers: int) -> Registry:  # fmt: skip
    """A registry of ``repository`` with nothing loaded (explicit mode without
    --load-model); :class:`UserError` when the repository cannot be read."""
    root = Path(repository).absolute()
    try:
        scan_models(root)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    return Registry(root, config, threads, max_queue, instances, workers)


def _stamp(folder: Path) -> tuple:
    """What a version folder holds now (names, sizes, change times), to tell whether it changed."""
    try:
        return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(folder)))
    except OSError:
        return ()
