"""Loading a model repository into runtimes, and finding the runtime a request names.

Every version of every model is verified (manifest digests) and loaded; a
version that fails is refused with its reason logged and kept for
``seedlock client models``, and the rest still serve. So is a model folder
that cannot be read; other odd entries are skipped with a logged reason.
Reasons name paths relative to the repository (they reach clients).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Sequence, TypeVar

from seedlock.core import model_config, tasks
from seedlock.core.errors import UserError
from seedlock.core.imaging import DEFAULT_LIMITS, ImageLimits
from seedlock.core.manifest import Manifest, ManifestError
from seedlock.core.repository import MAX_VERSION, load_version, scan_models, scan_versions
from seedlock.core.sessions import SessionConfig, default_threads
from seedlock.serve import plain_models, proofs
from seedlock.serve.defaults import DEFAULT_MAX_QUEUE
from seedlock.serve.errors import echo, invalid, not_found, unavailable
from seedlock.serve.memory import MemoryTrimmer
from seedlock.serve.runtime import ModelRuntime, load_runtime
from seedlock.serve.scheduler import Batching, ModelScheduler

T = TypeVar("T")

log = logging.getLogger("seedlock.serve")


@dataclass
class Serving:
    """How a loaded model version is scheduled, and what its load-time proofs found."""

    batching: Batching
    batching_reason: str
    instances: int
    max_queue: int
    bit_exact: bool
    bit_exact_detail: str
    unverified: str = ""  # why its digests are not verified (a plain Triton model); "" when they are


@dataclass
class Registry:
    """The loaded models: ``runtimes[name][version]``, refusals with reasons,
    and, once :meth:`start` ran on the server's event loop, one scheduler per
    model version. ``cpu`` runs request decoding and encoding off the loop."""

    repository: Path
    config: SessionConfig
    threads: int  # CPU threads each model version's instances may keep busy (--threads)
    max_queue: int = DEFAULT_MAX_QUEUE
    instances: int | None = None  # --instances: per model version, over config.pbtxt
    workers: int = 4
    image_limits: ImageLimits = DEFAULT_LIMITS  # --max-image-pixels / --max-image-side
    runtimes: dict[str, dict[int, ModelRuntime]] = field(default_factory=dict)
    refused: dict[str, dict[int | None, str]] = field(default_factory=dict)
    refused_tasks: dict[str, str] = field(default_factory=dict)  # a refused model's task, where its manifest told
    serving: dict[tuple[str, int], Serving] = field(default_factory=dict)
    schedulers: dict[tuple[str, int], ModelScheduler] = field(default_factory=dict)
    extra_schedulers: dict[str, ModelScheduler] = field(default_factory=dict)
    cpu: ThreadPoolExecutor | None = None
    trimmer: MemoryTrimmer = field(default_factory=MemoryTrimmer)

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
            raise not_found(f"unknown model {echo(name)} (this server has: {known})")
        versions = self.runtimes.get(name, {})
        if number is None:
            if versions:
                return versions[max(versions)]
            raise unavailable(f"model {name!r} has no ready version ({self.refusal(name)})")
        refused = self.refused.get(name, {})
        if number in versions:
            return versions[number]
        if number in refused:
            raise unavailable(f"model {name!r} version {number} was refused at load: {refused[number]}")
        if None in refused:  # the model folder itself could not be read: its versions are unknown
            raise unavailable(f"model {name!r} was refused at load: {refused[None]}")
        raise not_found(f"model {name!r} has no version {number} (ready: {sorted(versions) or 'none'})")

    def refusal(self, name: str) -> str:
        """Why model ``name`` has no ready version: each refused version's reason."""
        refused = self.refused.get(name, {})
        return "; ".join(f"v{v}: {r}" if v is not None else r for v, r in sorted(refused.items(), key=lambda i: i[0] or 0))

    def refuse(self, name: str, version: int | None, reason: str, task: str | None = None) -> None:
        """Record (and log) why a model, or one version of it, will not serve;
        the repository's own path is taken out of the reason (it reaches clients)."""
        reason = relative(reason, self.repository)
        self.refused.setdefault(name, {})[version] = reason
        if task:
            self.refused_tasks.setdefault(name, task)
        log.error("refused %s: %s", name if version is None else f"{name} version {version}", reason)

    # -- scheduling ------------------------------------------------------------
    def start(self) -> None:
        """Create and start the schedulers (on the running event loop), and
        the memory trimmer the end of every call reports to."""
        self.trimmer.start()
        self.cpu = ThreadPoolExecutor(max_workers=max(1, self.workers), thread_name_prefix="seedlock-cpu")
        for versions in self.runtimes.values():
            for runtime in versions.values():
                self._start_scheduler(runtime, len(versions) == 1)

    def _start_scheduler(self, runtime: ModelRuntime, only: bool) -> None:
        name, number = runtime.name, runtime.version
        serving = self.serving[(name, number)]
        label = f"model {name!r}" if only else f"model {name!r} version {number}"
        run = lambda feeds, outputs, rt=runtime: rt.run(feeds, outputs)  # noqa: E731 - looked up per call
        scheduler = ModelScheduler(label, run, serving.batching, serving.instances, serving.max_queue)
        scheduler.start()
        self.schedulers[(name, number)] = scheduler

    # -- changes at run time (seedlock.serve.model_control) -----------------------
    def stage_versions(self, name: str, numbers: Sequence[int]) -> "Registry":
        """Load versions of ``name`` into a scratch registry with this one's
        settings (off the event loop: nothing here is touched); its
        ``runtimes``/``serving``/``refused`` hold what loaded and what was refused."""
        scratch = Registry(self.repository, self.config, self.threads, self.max_queue, self.instances, self.workers)
        scratch.image_limits = self.image_limits
        for number in numbers:
            _load_version(scratch, name, number)
        return scratch

    def add_version(self, runtime: ModelRuntime, serving: Serving) -> None:
        """Serve a version loaded by :meth:`stage_versions` (on the event loop):
        its scheduler starts before requests can find it."""
        name, number = runtime.name, runtime.version
        self.serving[(name, number)] = serving
        self._start_scheduler(runtime, False)
        self.runtimes.setdefault(name, {})[number] = runtime
        refused = self.refused.get(name, {})
        refused.pop(number, None)
        refused.pop(None, None)
        if not refused:
            self.refused.pop(name, None)

    async def remove_version(self, name: str, number: int, grace: float | None) -> None:
        """Stop serving a version (on the event loop): new requests no longer
        find it, queued and running ones finish on it (up to ``grace`` s), then it is dropped."""
        self.runtimes.get(name, {}).pop(number, None)
        scheduler = self.schedulers.get((name, number))
        if scheduler is not None:
            await scheduler.drain(grace)
        self.schedulers.pop((name, number), None)
        self.serving.pop((name, number), None)

    def add_scheduler(self, key: str, label: str, instances: int | None = None) -> ModelScheduler:
        """A scheduler for work that belongs to no model (``Fingerprints.Compare``)."""
        scheduler = ModelScheduler(label, None, Batching(), instances or max(1, self.threads), self.max_queue)
        scheduler.start()
        self.extra_schedulers[key] = scheduler
        return scheduler

    def scheduler(self, runtime: ModelRuntime) -> ModelScheduler:
        return self.schedulers[(runtime.name, runtime.version)]

    async def drain(self, grace: float | None) -> None:
        """Drain every scheduler (see :meth:`ModelScheduler.drain`)."""
        every = [*self.schedulers.values(), *self.extra_schedulers.values()]
        await asyncio.gather(*(s.drain(grace) for s in every))

    def close(self) -> None:
        """Stop the decoding pool. Only once no RPC is left: a handler whose
        model call has finished still encodes its answer on this pool."""
        if self.cpu is not None:
            self.cpu.shutdown(wait=False, cancel_futures=True)
        self.trimmer.close()

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU work of a request (decoding, encoding) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.cpu, fn, *args)


def plan_serving(runtime: ModelRuntime, registry: Registry) -> Serving:
    """Read the model's ``config.pbtxt``, choose its instances, and run the
    load-time proofs (:mod:`seedlock.serve.proofs`)."""
    manifest, folder = runtime.manifest, runtime.folder
    where = f"{manifest.name}/{model_config.CONFIG_NAME}"
    settings = model_config.scheduling(model_config.read(folder.parent), manifest, where)
    limit = settings.max_batch_size
    if settings.dynamic_batching and limit > 1:
        graph = manifest.graph("model")
        try:
            proof = proofs.prove_batching(runtime.run, graph, proofs.proof_templates(manifest, folder), limit)
        except Exception as exc:  # noqa: BLE001 - e.g. random companion indices a graph cannot take (a decoder's positions)
            proof = proofs.BatchingProof("off", f"the batching proof's random companion rows failed to run "
                                         f"({type(exc).__name__}: {str(exc)[:200]}): one request per call")  # fmt: skip
    elif limit:
        proof = proofs.BatchingProof("off", "config.pbtxt has no dynamic_batching block: one request per call")
    else:
        proof = proofs.BatchingProof("off", "max_batch_size is 0: one request per call")
    mode, reason = proof.mode, proof.reason
    batching = Batching(mode, limit, settings.max_queue_delay_us / 1e6, settings.preferred_batch_sizes, proof.shapes)
    instances = registry.instances or settings.instance_count or max(1, registry.threads // manifest.intra_op_threads)
    exact, detail = proofs.bit_exact_with_export(runtime.sessions, manifest, folder)
    unverified = plain_models.UNVERIFIED if plain_models.is_plain_manifest(manifest) else ""
    if unverified:
        log.warning("%s v%d: %s", manifest.name, manifest.version, unverified)
    log_fn = log.info if mode != "off" or not settings.dynamic_batching else log.warning
    log_fn("%s v%d: batching %s (%s); %d instance(s) x %d thread(s); bit_exact_with_export=%s (%s)",
           manifest.name, manifest.version, mode, reason, instances, manifest.intra_op_threads, exact, detail)
    detail = relative(detail, registry.repository)  # shown in ListModels, like refusal reasons
    return Serving(batching, relative(reason, registry.repository), instances,
                   settings.max_queue_size or registry.max_queue, exact, detail, unverified)  # fmt: skip


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
            raise invalid(f"model version {echo(version)} is not a number") from None
    if number < 0:
        raise invalid(f"model version {echo(str(number))} is negative")
    if number > MAX_VERSION:
        raise invalid(f"model version {echo(str(number))} is over the largest there can be ({MAX_VERSION})")
    return number or None


def relative(text: str, root: Path) -> str:
    """``text`` with the repository's own location taken out of the paths it
    names (``/srv/models/seg/1/model.onnx`` -> ``seg/1/model.onnx``): reasons
    reach clients, and where the server keeps its files is none of theirs."""
    forms = {str(root.absolute()), os.path.realpath(root)} - {os.sep}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form + os.sep, "")
        text = re.sub(re.escape(form) + r"(?=$|[\s'\":;,)])", "<repository>", text)
    return text


def load_repository(
    repository: str | Path,
    config: SessionConfig,
    models: Sequence[str] | None = None,
    threads: int | None = None,
    max_queue: int = DEFAULT_MAX_QUEUE,
    instances: int | None = None,
    workers: int = 4,
) -> Registry:
    """Verify and load the repository's models (all, or those named), read
    their ``config.pbtxt`` and prove their batching (see :func:`plan_serving`).
    ``threads``: the CPU threads each model version's instances may keep busy (default: the cores).
    Raises :class:`UserError` only when the repository itself cannot be read
    or ``models`` names one it lacks; any model or version that fails is refused."""
    root = Path(repository).absolute()
    try:
        scan = scan_models(root)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    for entry, why in scan.skipped.items():
        log.warning("skipped %s in the model repository: %s", entry, why)
    available = sorted([*scan.found, *scan.refused])
    if models:
        unknown = [m for m in models if m not in available]
        if unknown:
            raise UserError(f"model(s) {', '.join(unknown)} not in {root} (it has: {', '.join(available) or 'nothing'})")
    registry = Registry(root, config, threads or default_threads(), max_queue, instances, workers)
    for name in available:
        if models and name not in models:
            continue
        if name in scan.refused:
            registry.refuse(name, None, scan.refused[name])
            continue
        try:
            versions = scan_versions(root, name)
        except ManifestError as exc:
            registry.refuse(name, None, str(exc))
            continue
        for entry, why in versions.skipped.items():
            log.warning("skipped %s/%s: %s", name, entry, why)
        for number, why in versions.refused.items():
            registry.refuse(name, number, why)
        if not versions.found and not versions.refused:
            registry.refuse(name, None, f"{name}/ has no version folder (named 1, 2, 3, …)")
        try:
            selected = policy_versions(root, name, versions.found)
        except ManifestError as exc:  # config.pbtxt unreadable or not a ModelConfig: none of its versions serves
            for number in versions.found:
                registry.refuse(name, number, str(exc), _task_of(root / name / str(number)))
            continue
        for number in selected:
            _load_version(registry, name, number)
    return registry


def policy_versions(root: Path, name: str, found: Sequence[int]) -> list[int]:
    """The versions of ``name`` (out of the folders ``found``) its
    ``config.pbtxt``'s ``version_policy`` serves; those it leaves out are
    logged. :class:`ManifestError` when the config cannot be read or parsed."""
    where = f"{name}/{model_config.CONFIG_NAME}"
    selected, missing = model_config.select_versions(model_config.read(root / name), list(found), where)
    left_out = sorted(set(found) - set(selected))
    if left_out:
        log.info("%s: versions %s not served (%s's version_policy)", name, left_out, where)
    if missing:
        log.warning("%s: version_policy names version(s) %s, which have no folder", where, missing)
    return selected


def _load_version(registry: Registry, name: str, number: int) -> None:
    """Load one version into ``registry``, or refuse it with the reason."""
    try:
        if plain_models.is_plain(registry.repository / name / str(number)):
            runtime = plain_models.load_plain_runtime(registry.repository, name, number, registry.config)
        else:
            mv = load_version(registry.repository, name, number)
            check_task(mv.manifest)
            runtime = load_runtime(mv.manifest, mv.folder, registry.config)
        serving = plan_serving(runtime, registry)
    except (ManifestError, ValueError, OSError) as exc:
        registry.refuse(name, number, str(exc), _task_of(registry.repository / name / str(number)))
        return
    except Exception as exc:  # noqa: BLE001 - e.g. onnxruntime cannot parse the graph
        registry.refuse(name, number, f"{type(exc).__name__}: {exc}", _task_of(registry.repository / name / str(number)))
        return
    registry.runtimes.setdefault(name, {})[number] = runtime
    registry.serving[(name, number)] = serving
    log.info(
        "loaded %s version %d (%s, digest %s…) on %s",
        name, number, runtime.task, runtime.digest[:12], ", ".join(runtime.providers),
    )


def _task_of(folder: Path) -> str | None:
    """The task a refused version's manifest names, where it can be read (so
    its task service can say the model is not ready, rather than absent)."""
    try:
        task = Manifest.load(folder).task
    except Exception:  # noqa: BLE001 - no readable manifest: no task to tell
        return None
    return task if isinstance(task, str) else None


class TaskModels(Generic[T]):
    """The registry's models of one task, each with what its service prepared
    from it at start-up (a checked spec, a decoder, …), and the request-time
    lookup every task service shares."""

    def __init__(self, registry: Registry, task: str, label: str, prepare: Callable[[ModelRuntime], T]) -> None:
        self.registry = registry
        self.task = task
        self.label = label
        self._prepare = prepare
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
            self._refused_ones()
            raise invalid(f"this server has no {self.label} model")
        raise invalid(f"this server has several {self.label} models; name one in model_name: {', '.join(names)}")

    def _refused_ones(self) -> None:
        """UNAVAILABLE, with why, when this task's models were all refused at
        load (or their task is unknown because their manifest was unreadable):
        the request was right, the server is not ready for it."""
        reg = self.registry
        refused = [n for n in sorted(reg.refused) if not reg.runtimes.get(n)]
        ours = [n for n in refused if reg.refused_tasks.get(n) == self.task]
        unknown = [n for n in refused if n not in reg.refused_tasks]
        if ours:
            reasons = "; ".join(f"{n}: {reg.refusal(n)}" for n in ours)
            raise unavailable(f"this server's {self.label} model is not ready: it was refused at load ({reasons})")
        if unknown:
            reasons = "; ".join(f"{n}: {reg.refusal(n)}" for n in unknown)
            raise unavailable(f"this server has no ready {self.label} model; refused at load: {reasons}")

    def resolve(self, name: str, version: int | str | None) -> tuple[ModelRuntime, T]:
        """The runtime and prepared object for a request's model (its only
        model of this task when ``name`` is empty)."""
        name = name or self._default_name()
        runtime = self.registry.get(name, version)
        prepared = self.prepared.get((runtime.name, runtime.version))
        if prepared is None and runtime.task == self.task:  # a version loaded after start-up (model control)
            prepared = self.prepared[(runtime.name, runtime.version)] = self._prepare(runtime)
        if prepared is None:
            raise invalid(f"model {name!r} is a {runtime.task!r} model, not a {self.label} model")
        return runtime, prepared
