"""Every task of the task table, end to end, through the user-facing CLI:
``seedlock train`` (tiny budgets), ``seedlock export onnx``, ``seedlock serve``
and ``seedlock client``. Shared by test_pipelines.py and
test_serving_install.py: trained checkpoints and exported repositories are
cached per pytest process, so each task trains once however many modules ask.

Per-task knowledge lives in two dicts keyed by the task's name,
:data:`TINY_TRAIN` and :data:`CLIENT_CALLS`; a task of the table missing from
either fails its tests loudly (add a row for the new task).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from conftest import run_cli

from seedlock.core.tasks import TASKS, Task

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- training budgets

# The composer trains on a folder of melodies: two genres of scale fragments.
COMPOSE_GENRES = ("up", "down")


def write_music_folder(folder: Path) -> Path:
    """``folder/<genre>/p<i>.mid``: four short MIDI melodies per genre."""
    from seedlock.core import music_events as me

    for gi, genre in enumerate(COMPOSE_GENRES):
        (folder / genre).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            base = 60 + i
            if gi == 0:
                values = [(base + (2 * k) % 12, 0.5) for k in range(24)]
            else:
                values = [(base + 12 - (3 * k) % 12, 1.0 if k % 3 else 2.0) for k in range(24)]
            (folder / genre / f"p{i}.mid").write_bytes(me.to_midi_bytes(me.from_values(values)))
    return folder


def _segment_flags(work: Path) -> list[str]:
    return ["--size", "32", "--width", "4", "--depth", "2", "--n-train", "8", "--n-val", "4", "--steps", "4",
            "--batch-size", "4", "--activation", "bi-elu"]  # fmt: skip


def _caption_flags(work: Path) -> list[str]:
    return ["--size", "32", "--n-train", "8", "--n-val", "3", "--min-count", "1", "--width", "4", "--embed-dim", "8",
            "--hidden", "16", "--batch-size", "4", "--steps", "3", "--beam", "2", "--max-length", "8"]  # fmt: skip


def _compose_flags(work: Path) -> list[str]:
    # --hidden 16 is the smallest that trains: at 8 the instance norm of the
    # multi-way decoder sees one element per channel and torch refuses it.
    music = write_music_folder(work / "music")
    return ["--data", str(music), "--window", "8", "--horizon", "8", "--hidden", "16", "--epochs", "1",
            "--batch-size", "16", "--stride", "4", "--eval-windows", "4"]  # fmt: skip


def _fingerprint_flags(work: Path) -> list[str]:
    # 40 steps, not 3: an (almost) untrained DCGAN's eval-mode BatchNorm, with
    # running statistics from 3 batches, kills every ReLU and the generator
    # draws flat grey (tanh(0)); at 40 steps the images have texture. Still ~3 s.
    return ["--latent-dim", "16", "--g-width", "8", "--d-width", "4", "--batch-size", "4", "--n-per-quality", "6",
            "--steps", "40", "--samples", "8", "--log-every", "1"]  # fmt: skip


# task name -> (work folder -> the smallest `seedlock train <command>` flags that train)
TINY_TRAIN: dict[str, Callable[[Path], list[str]]] = {
    "segmentation": _segment_flags,
    "captioning": _caption_flags,
    "composition": _compose_flags,
    "fingerprint-generation": _fingerprint_flags,
}
COMMON_TRAIN = ["--threads", "1", "--no-progress"]


def entry(table: dict, task: Task, what: str):
    if task.name not in table:
        pytest.fail(
            f"task {task.name!r} of seedlock.core.tasks.TASKS has no entry in tests/pipeline_helpers.py {what}: "
            f"add one so its pipeline is tested end to end",
            pytrace=False,
        )
    return table[task.name]


# --------------------------------------------------------------------------- train + export, cached per process

_TRAINED: dict[str, Path] = {}
_EXPORTED: dict[str, Path] = {}


def train(task: Task, tmp_path_factory) -> Path:
    """Train ``task`` tiny with the real trainer (``seedlock train``); its checkpoint.pt."""
    if task.name not in _TRAINED:
        flags = entry(TINY_TRAIN, task, "TINY_TRAIN")
        work = tmp_path_factory.mktemp(f"train-{task.stage}")
        out = work / "run"
        proc = run_cli("train", task.command, "--out", str(out), *flags(work), *COMMON_TRAIN, timeout=600)
        assert proc.returncode == 0, (
            f"seedlock train {task.command} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
        ckpt = out / "checkpoint.pt"
        assert ckpt.is_file(), f"seedlock train {task.command} wrote no {ckpt}: {sorted(p.name for p in out.iterdir())}"
        _TRAINED[task.name] = ckpt
    return _TRAINED[task.name]


def export(checkpoint: Path, repository: Path, task: Task) -> Path:
    """``seedlock export onnx CKPT --repository R --name <model_name>``; the model folder R/<name>."""
    proc = run_cli("export", "onnx", str(checkpoint), "--repository", str(repository), "--name", task.model_name, timeout=600)
    assert proc.returncode == 0, (
        f"seedlock export onnx ({task.name}) exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    model = repository / task.model_name
    assert (model / "config.pbtxt").is_file() and (model / "1" / "manifest.json").is_file(), sorted(map(str, model.rglob("*")))
    return model


def exported(task: Task, tmp_path_factory) -> Path:
    """A repository holding ``task``'s tiny model as ``<model_name>`` v1 (trained and exported once per process)."""
    if task.name not in _EXPORTED:
        repo = tmp_path_factory.mktemp(f"repo-{task.stage}")
        export(train(task, tmp_path_factory), repo, task)
        _EXPORTED[task.name] = repo
    return _EXPORTED[task.name]


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- a real server process


def blocking_sitecustomize(modules: tuple[str, ...]) -> str:
    """A sitecustomize.py that makes ``modules`` look uninstalled: ``import M``
    (and ``import M.sub``) raises ModuleNotFoundError naming M, and
    ``importlib.util.find_spec("M")`` returns None, as libraries probing for
    optional dependencies (music21 probes for matplotlib) expect."""
    return textwrap.dedent(
        f"""
        import sys

        # None in sys.modules: the import system's own "not importable" marker.
        for _name in {modules!r}:
            sys.modules[_name] = None
        """
    )


@dataclass
class Server:
    proc: subprocess.Popen
    address: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def terminate(self, timeout: float = 120) -> int:
        """SIGTERM; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.proc.stdout.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if not self.proc.stdout.closed:
            self.proc.stdout.close()


def start_server(repository: Path, log_dir: Path, env: dict | None = None, timeout: float = 180,
                 threads: tuple[str, ...] = ("--threads", "1"), prefix: tuple[str, ...] = ()) -> Server:  # fmt: skip
    """``seedlock serve --repository R --port 0`` in a subprocess (``prefix``: a
    command it runs under, such as ``taskset``); returns once it printed
    ``seedlock serve: listening on HOST:PORT`` (read from its stdout)."""
    stderr_path = log_dir / "serve.stderr"
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "seedlock", "serve", "--repository", str(repository), "--port", "0", *threads,
             "--workers", "4", "--grace", "30"],
            stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, **(env or {})}, cwd=ROOT,
        )  # fmt: skip
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=deadline - time.monotonic()):
                continue
            line = proc.stdout.readline()
            if not line:  # EOF: the server exited
                break
            lines.append(line)
            match = re.fullmatch(r"seedlock serve: listening on (\S+:\d+)\s*", line)
            if match:
                return Server(proc, match.group(1), stderr_path)
    finally:
        sel.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    raise AssertionError(
        f"seedlock serve did not print its address (exit {proc.returncode}); stdout: {''.join(lines)!r}\n"
        f"stderr:\n{stderr_path.read_text(errors='replace')[-6000:]}"
    )


# --------------------------------------------------------------------------- each task's client CLI

IMAGE_HW = (37, 53)  # not the training size, not square: the server letterboxes and maps back


def write_image(path: Path) -> Path:
    import cv2
    import numpy as np

    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (*IMAGE_HW, 3), dtype=np.uint8)
    img[8:30, 10:40] = (200, 40, 40)  # a block, so it is not pure noise
    assert cv2.imwrite(str(path), img)
    return path


def _client(server: str, env: dict | None, *args: str) -> subprocess.CompletedProcess:
    proc = run_cli("client", *args, "--server", server, env=env, timeout=300)
    assert proc.returncode == 0, f"seedlock client {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert "INTERNAL" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    return proc


def call_segment(server: str, out: Path, env: dict | None = None) -> bytes:
    import cv2

    image = write_image(out / "input.png")
    mask_path = out / "mask.png"
    proc = _client(server, env, "segment", str(image), "--out", str(mask_path))
    assert mask_path.is_file(), proc.stdout
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    assert mask is not None and mask.ndim == 2 and mask.shape == IMAGE_HW, None if mask is None else mask.shape
    assert f"({IMAGE_HW[1]}x{IMAGE_HW[0]} class-index mask)" in proc.stdout, proc.stdout
    return mask_path.read_bytes()


def call_caption(server: str, out: Path, env: dict | None = None) -> bytes:
    image = write_image(out / "input.png")
    proc = _client(server, env, "caption", str(image))
    match = re.search(r"^ *1\. (\S.*?)  \(log-prob (-?\d+\.\d+)\)", proc.stdout, re.MULTILINE)
    assert match, f"no caption printed:\n{proc.stdout}"
    assert float(match.group(2)) <= 0.0, proc.stdout
    return proc.stdout.encode()


def call_compose(server: str, out: Path, env: dict | None = None) -> bytes:
    from seedlock.core import music_events as me

    song = out / "song.musicxml"
    proc = _client(server, env, "compose", "--genre", COMPOSE_GENRES[0], "--length", "16", "--seed", "7", "--out", str(song))
    assert song.is_file(), proc.stdout
    data = song.read_bytes()
    assert me.sniff_format(data) == "musicxml" and b"<score-partwise" in data, data[:200]
    assert "(16 events" in proc.stdout, proc.stdout
    assert len(me.events_from_bytes(data)) > 0
    return data


def call_fingerprints(server: str, out: Path, env: dict | None = None) -> bytes:
    import cv2

    folder = out / "fingerprints"
    _client(server, env, "fingerprints", "generate", "--count", "2", "--seed", "3", "--out", str(folder))
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["fp_000.png", "fp_001.png"], files
    blobs = []
    for name in files:
        img = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.ndim == 2 and img.shape[0] == img.shape[1] >= 16, None if img is None else img.shape
        assert img.min() < img.max(), f"{name} is one flat colour"
        blobs.append((folder / name).read_bytes())
    return b"".join(blobs)


# task name -> (server address, empty folder, env) -> the answer's bytes, after checking it is real
CLIENT_CALLS: dict[str, Callable[..., bytes]] = {
    "segmentation": call_segment,
    "captioning": call_caption,
    "composition": call_compose,
    "fingerprint-generation": call_fingerprints,
}


def call(task: Task, server: str, out: Path, env: dict | None = None) -> bytes:
    out.mkdir(parents=True, exist_ok=True)
    return entry(CLIENT_CALLS, task, "CLIENT_CALLS")(server, out, env)


def task_ids(task: Task) -> str:
    return task.name


__all__ = ["TASKS", "CLIENT_CALLS", "TINY_TRAIN", "call", "export", "exported", "start_server", "train", "tree_bytes"]
