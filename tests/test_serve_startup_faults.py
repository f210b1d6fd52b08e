"""Start-up survives the repository (odd, unreadable and special entries are
skipped or refused with a reason while the rest serve), SIGTERM at any moment
of start-up exits 0, refused models answer UNAVAILABLE with a reason that
names no absolute path, and memory taken by large requests is given back
(measured from the server process's RSS)."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from process_helpers import read_address, status_bytes
from serving_fixtures import write_plain_model

from seedlock.clients import InferenceClient, SegmentationClient
from seedlock.clients.base import NO_RETRY
from seedlock.clients.errors import Unavailable
from seedlock.core.files import UnreadableFile, read_ahead
from seedlock.serve.server import start_server

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20
GOOD = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)


def _started(repo: Path, timeout: float = 120.0, **kwargs):
    """start_server on a thread, so a start-up that hangs fails the test instead of the run."""
    out: list = []

    def run() -> None:
        try:
            out.append(start_server(repo, threads=1, workers=2, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert out, f"start-up hung for {timeout} s"
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _fifo_in_place_of(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


@pytest.fixture(scope="module")
def odd_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("oddrepo")
    write_plain_model(repo, "good")
    # Version folders that are not versions, and version names that are not folders.
    write_plain_model(repo, "odd")
    for name in ("²", "01", "v2", "١"):  # '²'.isdigit() and int('١') == 1, but neither is an ASCII version
        (repo / "odd" / name).mkdir()
    (repo / "odd" / "3").write_text("a file where a version folder belongs")
    (repo / "odd" / "4").symlink_to("4")  # a symbolic link loop
    (repo / "odd" / "notes.txt").write_text("files beside the versions are the model's business")
    # Model folders that cannot be: a link loop, a broken link, special files, a non-UTF-8 name.
    (repo / "loop").symlink_to("loop")
    (repo / "dangling").symlink_to("nowhere")
    (repo / "README").write_text("a file at the top is not a model")
    os.mkfifo(repo / "pipe")
    os.mkdir(os.fsencode(repo) + b"/bad\xffname")
    (repo / "empty").mkdir()
    # Special and malformed files where the loader reads: each refuses its model, none blocks.
    for name, file in (("fifo_manifest", "1/manifest.json"), ("fifo_config", "config.pbtxt"), ("fifo_graph", "1/model.onnx")):
        write_plain_model(repo, name)
        _fifo_in_place_of(repo / name / file)
    for name, text in (("json_list", "[]"), ("json_deep", "[" * 100_000), ("json_huge_int", "1" * 5000)):
        write_plain_model(repo, name)
        (repo / name / "1" / "manifest.json").write_text(text)
    # A model whose task has a service, refused: its task service must say so.
    write_plain_model(repo, "seg", task="segmentation")
    return repo


@pytest.fixture(scope="module")
def odd_server(odd_repo):
    running = _started(odd_repo)
    yield running
    running.stop(grace=0.5)


def test_odd_entries_are_skipped_or_refused_and_the_rest_serve(odd_repo, caplog):
    with caplog.at_level(logging.WARNING, logger="seedlock.serve"):
        running = _started(odd_repo)
    try:
        reg = running.registry
        assert reg.ready_names() == ["good", "odd"]
        assert reg.ready_versions("odd") == [1]
        assert "is a file, not a version folder" in reg.refused["odd"][3]
        assert "symbolic link loop" in reg.refused["odd"][4]
        assert "symbolic link loop" in reg.refused["loop"][None]
        assert "broken symbolic link" in reg.refused["dangling"][None]
        assert "has no version folder" in reg.refused["empty"][None]
        assert "FIFO" in reg.refused["fifo_manifest"][1] and "not a regular file" in reg.refused["fifo_manifest"][1]
        assert "FIFO" in reg.refused["fifo_config"][1]
        assert "FIFO" in reg.refused["fifo_graph"][1]
        assert "malformed manifest" in reg.refused["json_list"][1]
        assert "not valid JSON" in reg.refused["json_deep"][1] and "not valid JSON" in reg.refused["json_huge_int"][1]
        assert "README" not in reg.names() and "pipe" not in reg.names()
        assert not any("bad" in name for name in reg.names())
        logged = caplog.text
        for entry in ("odd/²", "odd/01", "odd/v2", "odd/١", "pipe", "bad\\xffname"):
            assert f"skipped {entry}" in logged, entry
        assert "notes.txt" not in logged and "README" not in logged
        with InferenceClient(running.address, retry=NO_RETRY, timeout=30) as v2:
            assert v2.infer("good", {"image": GOOD})["logits"].shape == (1, 4, 8, 8)
            assert v2.infer("odd", {"image": GOOD})["logits"].shape == (1, 4, 8, 8)
    finally:
        running.stop(grace=0.5)


def test_refused_models_answer_unavailable_with_reasons_relative_to_the_repository(odd_repo, odd_server):
    root = str(odd_repo)
    with SegmentationClient(odd_server.address, retry=NO_RETRY, timeout=30) as seg, \
            InferenceClient(odd_server.address, retry=NO_RETRY, timeout=30) as v2:  # fmt: skip
        # The only segmentation model was refused: not "this server has no segmentation model".
        with pytest.raises(Unavailable) as info:
            seg.segment(b"\x89PNG not read: the model is not ready")
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert "segmentation model is not ready" in info.value.message and "seg: v1:" in info.value.message
        with pytest.raises(Unavailable, match="fifo_manifest/1/manifest.json is a FIFO"):
            v2.infer("fifo_manifest", {"image": GOOD})
        with pytest.raises(Unavailable, match="loop: a symbolic link loop"):
            v2.infer("loop", {"image": GOOD}, version="2")
        messages = [info.value.message]
        for name in ("fifo_graph", "fifo_config", "json_deep", "empty"):
            with pytest.raises(Unavailable) as refused:
                v2.infer(name, {"image": GOOD})
            messages.append(refused.value.message)
        listing = {m.name: m for m in seg.list_models().models}
    reasons = [v.reason for m in listing.values() for v in m.versions if not v.ready]
    assert len(reasons) >= 10 and all(reasons)
    assert {"loop", "dangling", "fifo_manifest", "seg", "empty"} <= set(listing)
    for text in reasons + messages:
        assert root not in text and os.path.realpath(root) not in text, text


# Run as a program (not a preexec_fn: forking a process that runs grpc threads
# and then running Python in the child before exec can abort in grpc's fork
# handlers): drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding
# set, then exec the command, which then obeys file modes like anyone else.
DROP_DAC_AND_EXEC = textwrap.dedent(
    """
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            sys.exit(f"prctl(PR_CAPBSET_DROP) failed: {os.strerror(ctypes.get_errno())}")
    os.execv(sys.argv[1], sys.argv[1:])
    """
)


def _unprivileged() -> list[str]:
    """A command prefix under which chmod 000 makes a folder unreadable (skips when none can)."""
    if os.geteuid() != 0:
        return []
    prefix = [sys.executable, "-c", DROP_DAC_AND_EXEC]
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"seedlock-dac-probe-{os.getpid()}"
    probe.mkdir(mode=0)
    try:
        proc = subprocess.run([*prefix, sys.executable, "-c", f"import os; os.listdir({str(probe)!r})"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        probe.rmdir()
    if "prctl" in proc.stderr:
        pytest.skip(f"running as root and cannot drop CAP_DAC_OVERRIDE for the server ({proc.stderr.strip()}): chmod 000 blocks nothing")
    if proc.returncode == 0:
        pytest.skip("running as root and dropping CAP_DAC_OVERRIDE did not stop reads: chmod 000 blocks nothing here")
    return prefix


class Served:
    """``python -m seedlock serve`` in a subprocess; ``address`` once it listens."""

    def __init__(self, repo: Path, log: Path, *args: str, env: dict | None = None, prefix: list[str] = ()) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "seedlock", "serve", "--repository", str(repo), "--port", "0", "--threads", "1",
             "--workers", "2", *args],
            stdout=subprocess.PIPE, stderr=open(log, "w"), text=True, cwd=ROOT, env={**os.environ, **(env or {})},
        )  # fmt: skip

    def address(self, timeout: float = 120.0) -> str:
        return read_address(self.proc, self.log, timeout)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc.stdout.close()


def test_an_unreadable_model_folder_and_a_fifo_manifest_do_not_stop_seedlock_serve(tmp_path):
    repo = tmp_path / "repo"
    write_plain_model(repo, "good")
    write_plain_model(repo, "locked")
    write_plain_model(repo, "versions")
    write_plain_model(repo, "piped")
    (repo / "versions" / "2").mkdir()
    (repo / "versions" / "²").mkdir()
    _fifo_in_place_of(repo / "piped" / "1" / "manifest.json")
    locked = [repo / "locked", repo / "versions" / "2"]
    prefix = _unprivileged()
    for folder in locked:
        folder.chmod(0)
    server = Served(repo, tmp_path / "serve.log", prefix=prefix)
    try:
        address = server.address()
        with InferenceClient(address, retry=NO_RETRY, timeout=30) as v2:
            assert v2.infer("good", {"image": GOOD})["logits"].shape == (1, 4, 8, 8)
            assert v2.infer("versions", {"image": GOOD})["logits"].shape == (1, 4, 8, 8)  # version 1 serves
            listing = {m.name: m for m in v2.list_models().models}
        reasons = {(name, v.version): v.reason for name, m in listing.items() for v in m.versions if not v.ready}
        assert "locked/ cannot be listed (Permission denied)" in reasons[("locked", 0)]
        assert "Permission denied" in reasons[("versions", 2)]
        assert "piped/1/manifest.json is a FIFO" in reasons[("piped", 1)]
        assert not any(str(tmp_path) in r for r in reasons.values()), reasons
    finally:
        code = server.stop()
        for folder in locked:
            folder.chmod(0o755)
    log = (tmp_path / "serve.log").read_text()
    assert code == 0, log[-3000:]
    assert "skipped versions/²" in log and "Traceback" not in log


def _sigterm_caught(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = int(re.search(r"SigCgt:\s+([0-9a-f]+)", status).group(1), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


# Loaded into the server subprocess (sitecustomize): loading a model version
# announces itself with a file, then blocks, as a read on a hung mount would.
BLOCK_LOAD = textwrap.dedent(
    """
    import os, pathlib, threading
    flag = os.environ.get("SEEDLOCK_TEST_LOADING")
    if flag:
        import seedlock.core.repository as repository
        def load_version(*args, **kwargs):
            pathlib.Path(flag).touch()
            threading.Event().wait(120)
        repository.load_version = load_version
    """
)


@pytest.mark.parametrize("moment", ["handler-installed", "loading-blocked"])
def test_sigterm_at_any_moment_of_start_up_exits_zero(tmp_path, moment):
    repo = tmp_path / "repo"
    write_plain_model(repo, "good")
    env = {}
    if moment == "loading-blocked":
        hook = tmp_path / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(BLOCK_LOAD)
        env = {"PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "SEEDLOCK_TEST_LOADING": str(tmp_path / "loading")}
    spawned = time.monotonic()
    server = Served(repo, tmp_path / "serve.log", env=env)
    pid = server.proc.pid
    pause = threading.Event()
    ready = (lambda: _sigterm_caught(pid)) if moment == "handler-installed" else (tmp_path / "loading").exists
    while not ready() and server.proc.poll() is None and time.monotonic() - spawned < 60:
        pause.wait(0.001)
    waited = time.monotonic() - spawned
    try:
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=30)
        out = server.proc.stdout.read()
    finally:
        server.stop()
    log = (tmp_path / "serve.log").read_text()
    assert code == 0, f"exit {code} after SIGTERM {waited:.3f} s after spawn ({moment}): {log[-2000:]}"
    assert "listening on" not in out and "Traceback" not in log
    assert "SIGTERM during start-up" in log
    if moment == "handler-installed":
        assert waited < 10, f"the SIGTERM handler took {waited:.2f} s to be installed"


def test_a_read_that_stalls_times_out():
    """A read that returns nothing (a hung mount; here a pipe nobody writes)
    fails after the stall timeout instead of blocking start-up."""
    read_end, write_end = os.pipe()
    try:
        started = time.monotonic()
        with pytest.raises(UnreadableFile, match="no data for 0.3 s"):
            list(read_ahead(lambda: os.dup(read_end), "a stalled file", stall_s=0.3))
        assert time.monotonic() - started < 5
    finally:
        os.close(write_end)  # the helper thread's read returns (EOF) and it ends
        os.close(read_end)


def test_memory_taken_by_large_requests_is_given_back(tmp_path):
    """Before: RSS stayed at its peak for good (194 MB -> 2138 MB in the
    issue; the ONNX Runtime arena and malloc kept every page). After: once the
    calls are over, RSS returns to near where it started."""
    repo = tmp_path / "repo"
    write_plain_model(repo, "plain")
    server = Served(repo, tmp_path / "serve.log", "--max-message-bytes", str(256 << 20))
    try:
        address = server.address()
        pid = server.proc.pid
        big = np.random.default_rng(1).standard_normal((8, 3, 320, 320)).astype(np.float32)  # 10 MB in, 13 MB out
        with InferenceClient(address, retry=NO_RETRY, timeout=120) as v2:
            v2.infer("plain", {"image": GOOD})
            before = status_bytes(pid, "VmRSS") / MB
            for _ in range(4):
                assert v2.infer("plain", {"image": big})["logits"].shape == (8, 4, 320, 320)
            peak = status_bytes(pid, "VmHWM") / MB
            assert peak - before > 100, f"the requests did not grow the server ({before:.0f} -> {peak:.0f} MB)"
            pause = threading.Event()
            deadline = time.monotonic() + 30
            while (after := status_bytes(pid, "VmRSS") / MB) > before + 48 and time.monotonic() < deadline:
                pause.wait(0.2)
            assert after <= before + 48, f"RSS {before:.0f} MB before, {peak:.0f} MB peak, still {after:.0f} MB after 30 s idle"
            # And the server still answers the same bytes.
            assert v2.infer("plain", {"image": big})["logits"].shape == (8, 4, 320, 320)
    finally:
        assert server.stop() == 0
