"""User errors on the command line: one line, a non-zero exit, no traceback,
and refused before any work (no server is contacted, nothing is written).

Every command runs as a user would run it (``python -m seedlock ...`` in a
subprocess); they run a few at a time, as they mostly wait on start-up.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from serving_fixtures import sample_png, write_plain_model

from seedlock.clients.base import NO_RETRY, BaseClient
from seedlock.clients.errors import InvalidArgument
from seedlock.clients.fingerprints import FingerprintsClient
from seedlock.clients.inference import InferenceClient
from seedlock.core.argtypes import INT32_MAX, INT64_MAX, UINT64_MAX
from seedlock.core.errors import UserError
from seedlock.serve.server import start_server

# Nothing listens here: a command that got past its flags would say "cannot reach".
NOWHERE = "127.0.0.1:1"
HUGE = str(10**30)


def run_all(commands: list[list[str]]) -> list:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda argv: run_cli(*argv, timeout=120), commands))


def assert_one_line_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], proc.stderr
    assert "cannot reach" not in proc.stderr  # refused from its flags, before any call


@pytest.fixture()
def paths(tmp_path) -> dict[str, Path]:
    image = tmp_path / "image.png"
    image.write_bytes(sample_png(16, 16))
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    folder = tmp_path / "folder"
    folder.mkdir()
    return {"image": image, "file": a_file, "folder": folder, "tmp": tmp_path}


def test_serve_port_out_of_range_is_refused(tmp_path):
    procs = run_all([["serve", "--repository", str(tmp_path), "--port", port] for port in ("99999", "-1", "65536", HUGE)])
    for proc in procs:
        assert_one_line_error(proc, "argument --port: must be from 0 to 65535")
    with pytest.raises(UserError, match="--port must be from 0 to 65535"):
        start_server(tmp_path, port=-1)  # the in-process entry point checks the same


def test_output_paths_naming_a_folder_or_under_a_file_are_refused_before_the_call(paths):
    image, a_file, folder = str(paths["image"]), paths["file"], paths["folder"]
    server = ["--server", NOWHERE]
    cases = [
        (["client", "segment", image, "--out", str(folder)], "argument --out:", "is a folder"),
        (["client", "segment", image, "--out", str(a_file / "mask.png")], "argument --out:", "is a file, not a folder"),
        (["client", "segment", image, "--out", str(paths["tmp"] / "new" / "m.png"), "--overlay", str(a_file / "d" / "o.png")],
         "argument --overlay:", "is a file, not a folder"),
        (["client", "caption", image, "--json", str(folder)], "argument --json:", "is a folder"),
        (["client", "caption", image, "--json", str(a_file / "x.json")], "argument --json:", "is a file, not a folder"),
        (["client", "fingerprints", "generate", "--count", "2", "--out", str(a_file)], "argument --out:", "is a file"),
        (["client", "fingerprints", "generate", "--count", "2", "--out", str(a_file / "sub")], "argument --out:", "is a file, not a folder"),
        (["client", "fingerprints", "compare", image, image, "--json", str(folder)], "argument --json:", "is a folder"),
    ]  # fmt: skip
    for (_argv, *needles), proc in zip(cases, run_all([argv + server for argv, *_ in cases])):
        assert_one_line_error(proc, *needles)
    assert not (paths["tmp"] / "new").exists()  # nothing was created on the way to refusing
    assert a_file.read_text() == "x" and not any(folder.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere; the under-a-file cases above cover root")
def test_output_into_a_folder_without_write_permission_is_refused(paths):
    locked = paths["tmp"] / "locked"
    locked.mkdir(mode=0o500)
    proc = run_cli("client", "segment", str(paths["image"]), "--out", str(locked / "m.png"), "--server", NOWHERE)
    assert_one_line_error(proc, "argument --out:", "no permission to create files in")


def test_out_of_range_integers_are_refused_by_the_flags(paths):
    image = str(paths["image"])
    out = ["--out", str(paths["tmp"] / "o.png")]
    fp_out = ["--out", str(paths["tmp"] / "fps")]
    version = f"must be from 0 to {INT64_MAX}"
    cases = [
        (["client", "segment", image, *out, "--version", HUGE], "--version", version),
        (["client", "segment", image, *out, "--version", "-1"], "--version", version),
        (["client", "caption", image, "--version", "-1"], "--version", version),
        (["client", "caption", image, "--beam", HUGE], "--beam", f"must be from 1 to {INT32_MAX}"),
        (["client", "caption", image, "--beam", "0"], "--beam", f"must be from 1 to {INT32_MAX}"),
        (["client", "caption", image, "--n", "-1"], "--n", "must be from 1"),
        (["client", "caption", image, "--max-length", HUGE], "--max-length", "must be from 1"),
        (["client", "caption", image, "--max-length", "1e3"], "--max-length", "'1e3' is not an integer"),
        (["client", "fingerprints", "generate", "--count", HUGE, *fp_out], "--count", f"must be from 1 to {INT32_MAX}"),
        (["client", "fingerprints", "generate", "--count", "-1", *fp_out], "--count", "must be from 1"),
        (["client", "fingerprints", "generate", "--count", "0", *fp_out], "--count", "must be from 1"),
        (["client", "fingerprints", "generate", "--count", "1", "--seed", str(2**64), *fp_out], "--seed", f"must be from 0 to {UINT64_MAX}"),
        (["client", "fingerprints", "generate", "--count", "1", "--seed", "-1", *fp_out], "--seed", "must be from 0"),
        (["client", "fingerprints", "generate", "--count", "1", "--version", HUGE, *fp_out], "--version", version),
        (["client", "fingerprints", "compare", image, image, "--threshold", "256"], "--threshold", "must be from 1 to 255"),
        (["client", "fingerprints", "compare", image, image, "--threshold", "0"], "--threshold", "must be from 1 to 255"),
        (["client", "health", "--timeout", "-1"], "--timeout", "must be a finite number > 0"),
        (["client", "models", "--timeout", "nan"], "--timeout", "must be a finite number > 0"),
    ]  # fmt: skip
    for (_argv, flag, message), proc in zip(cases, run_all([argv + ["--server", NOWHERE] for argv, *_ in cases])):
        assert_one_line_error(proc, f"argument {flag}: {message}")
    assert not (paths["tmp"] / "fps").exists()
    # --n above --beam is known before the call too
    proc = run_cli("client", "caption", image, "--beam", "2", "--n", "3", "--server", NOWHERE)
    assert_one_line_error(proc, "--n must be from 1 to the beam size (2), got 3")


def test_help_shows_the_ranges():
    procs = run_all([["serve", "--help"], ["client", "segment", "--help"], ["client", "caption", "--help"],
                     ["client", "fingerprints", "generate", "--help"], ["client", "fingerprints", "compare", "--help"]])
    text = [" ".join(p.stdout.split()) for p in procs]  # argparse wraps lines
    assert all(p.returncode == 0 for p in procs)
    assert "port, 0 to 65535; 0 picks a free one" in text[0] and "--auth-token-file" in text[0] and "--tls-client-ca" in text[0]
    assert f"model version, 0 to {INT64_MAX}; 0: the latest" in text[1] and "--tls-ca" in text[1] and "--token-file" in text[1]
    assert "up to the model's limit (16" in text[2] and "up to the model's limit (50" in text[2]
    assert "1 up to the model's limit (64" in text[3] and f"0 to {UINT64_MAX}" in text[3]
    assert "1 to 255" in text[4]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("clirepo")
    write_plain_model(repo, "plain")
    running = start_server(repo, threads=1, workers=2)
    yield running
    running.stop(grace=0.5)


def test_the_server_enforces_the_same_ranges(server):
    """What the flags refuse, the server refuses too (INVALID_ARGUMENT), and
    the ends of each range are served."""
    grey = np.full((8, 8), 100, np.uint8)
    with FingerprintsClient(server.address, retry=NO_RETRY, timeout=30) as fp:
        for threshold in (0, 256):
            with pytest.raises(InvalidArgument, match="binarize_threshold must be 1 to 255"):
                fp.compare([grey], [grey], threshold=threshold)
        for threshold in (1, 255):
            assert fp.compare([grey], [grey], threshold=threshold).binarize_threshold == threshold
    with InferenceClient(server.address, retry=NO_RETRY, timeout=30) as v2:
        with pytest.raises(InvalidArgument, match="model version '?-1'? is negative"):
            v2.model_ready("plain", version=-1)
        assert v2.model_ready("plain", version=1)
    # a long timeout (any finite number > 0 passes --timeout) is no error either
    with BaseClient(server.address, retry=NO_RETRY, timeout=1e9) as c:
        assert c.health() == "SERVING"
