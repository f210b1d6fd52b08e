"""Triton's perf_analyzer, unmodified, against a real seedlock server: sync
over a concurrency range, streaming, async and system shared memory.

perf_analyzer ships as a binary in Triton's SDK container and in older
tritonclient wheels (2.41 has it; 2.73, which the dev extra installs, does
not): $SEEDLOCK_PERF_ANALYZER, the venv's bin/ or $PATH. It needs libb64 (apt
libb64-0d) and CUDA's libcudart (pip nvidia-cuda-runtime-cu12) even for
CPU-only runs; the tests skip, saying which is missing, where they are not."""

from __future__ import annotations

import csv
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from serving_fixtures import make_segmenter_repository

from seedlock.serve.server import start_server


def _cudart_dirs() -> list[str]:
    """Folders that may hold libcudart.so.12: $LD_LIBRARY_PATH, the
    nvidia-cuda-runtime wheel (in this environment or a side one under /tmp)."""
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    try:
        import nvidia.cuda_runtime as runtime  # type: ignore[import-not-found]

        dirs += [str(Path(p) / "lib") for p in runtime.__path__]
    except ImportError:
        pass
    dirs += glob.glob("/tmp/cudart/lib/python3*/site-packages/nvidia/cuda_runtime/lib")
    return [d for d in dirs if glob.glob(os.path.join(d, "libcudart.so*"))]


def _perf_analyzer() -> tuple[str, dict[str, str]]:
    binary = os.environ.get("SEEDLOCK_PERF_ANALYZER") or str(Path(sys.executable).parent / "perf_analyzer")
    if not os.access(binary, os.X_OK):
        binary = shutil.which("perf_analyzer") or ""
    if not binary:
        pytest.skip("perf_analyzer is not installed: set SEEDLOCK_PERF_ANALYZER to its binary (Triton's SDK container, "
                    "or bin/perf_analyzer of the tritonclient 2.41 wheel)")
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(_cudart_dirs()))
    probe = subprocess.run([binary, "--version"], env=env, capture_output=True, text=True, timeout=60)
    if "error while loading shared libraries" in probe.stderr:
        pytest.skip(f"perf_analyzer cannot start here: {probe.stderr.strip()} "
                    "(apt install libb64-0d; pip install nvidia-cuda-runtime-cu12 and put its lib/ on LD_LIBRARY_PATH)")  # fmt: skip
    return binary, env


@pytest.fixture(scope="module")
def perf_analyzer():
    return _perf_analyzer()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = make_segmenter_repository(tmp_path_factory.mktemp("perf"))
    running = start_server(repo, threads=1, workers=2)
    yield running
    running.stop(grace=1.0)


@pytest.mark.parametrize(
    "mode",
    [["--concurrency-range", "1:16:15", "-b", "2"], ["--streaming"], ["--async"], ["--shared-memory", "system"]],
    ids=["sync-1-to-16", "streaming", "async", "system-shm"],
)
def test_perf_analyzer_measures_the_segmenter(perf_analyzer, server, tmp_path, mode):
    binary, env = perf_analyzer
    report = tmp_path / "report.csv"
    args = [binary, "-m", "segmenter", "-u", server.address, "-i", "grpc", "--shape", "image:3,32,32",
            "--measurement-interval", "300", "--max-trials", "3", "--stability-percentage", "999",
            "-f", str(report), *mode]  # fmt: skip
    if "--concurrency-range" not in mode:
        args += ["--concurrency-range", "2"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = list(csv.DictReader(report.open()))
    assert rows and all(float(r["Inferences/Second"]) > 0 for r in rows)
    assert [r["Concurrency"] for r in rows] == (["1", "16"] if "1:16:15" in mode else ["2"])
    # The server's own statistics (ModelStatistics) reached perf_analyzer's report.
    assert "Server:" in done.stdout and "Inference count:" in done.stdout
    assert server.shm.status() == []  # perf_analyzer unregistered what it registered
