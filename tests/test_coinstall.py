"""The serving stack shares an environment with today's Triton/KServe clients.

Fresh virtual environments get seedlock (no extras) and the newest
``tritonclient[grpc]``, in one resolver run and with the client installed after
seedlock (the order that once downgraded protobuf under seedlock and broke
``seedlock serve`` at import); in each, pip check passes, ``seedlock serve``
starts and answers that tritonclient. kserve and mlserver are resolved next to
them (pip dry runs). Needs PyPI: skips with a reason when it cannot be reached.

The pip runs are network-bound, so the module starts them all at once and each
test waits for its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from process_helpers import read_address
from serving_fixtures import make_segmenter_repository

# Network-bound (fresh venvs from PyPI): `make coinstall`, a CI step of its own, not `make test`.
pytestmark = [pytest.mark.slow, pytest.mark.coinstall]

ROOT = Path(__file__).resolve().parents[1]
PIP_TIMEOUT_S = 600
# What pip says when the index cannot be reached (no route, no DNS, a proxy refusing).
NETWORK_ERRORS = (
    "NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution", "Name or service not known",
    "Network is unreachable", "ConnectTimeout", "ReadTimeout", "ProxyError", "Connection refused", "No matching distribution",
)
# Well past 2.41 (2023), the tritonclient pip fell back to while seedlock required protobuf 7.
MIN_TRITONCLIENT = (2, 60)
SEEDLOCK_NEEDS = ("protobuf", "grpcio", "grpcio-health-checking", "grpcio-reflection", "numpy", "onnxruntime")


def _clean_env() -> dict[str, str]:
    """The environment without this checkout on the path: the venvs must import their installed seedlock."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _run(python: str | Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    # cwd: a folder without a `seedlock` package in it (the checkout's root has one)
    return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=timeout, env=_clean_env(), cwd=tempfile.gettempdir())


def _pip(python: str | Path, *args: str, timeout: float = PIP_TIMEOUT_S) -> subprocess.CompletedProcess:
    # The pip cache is used as configured (a CI cache of it makes these runs mostly local).
    return subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True,
                          timeout=timeout, env=_clean_env(), cwd=tempfile.gettempdir())


def _install(python: Path, *requirements: str) -> subprocess.CompletedProcess:
    # --no-compile: no .pyc for the thousands of installed files these tests never import
    return _ok(_pip(python, "install", "--no-compile", "-q", *requirements), f"pip install {' '.join(requirements)}")


def _ok(proc: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("+")[0].split(".")[:3] if p.isdigit())


@pytest.fixture(scope="module")
def newest_tritonclient(tmp_path_factory) -> str:
    """The tritonclient version pip picks unpinned; skips when PyPI is unreachable."""
    dest = tmp_path_factory.mktemp("probe")
    proc = _pip(sys.executable, "download", "--no-deps", "--timeout", "15", "--retries", "1", "-d", str(dest), "tritonclient", timeout=180)
    if proc.returncode != 0:
        said = proc.stdout + proc.stderr
        lines = [line.strip() for line in said.splitlines() if any(marker in line for marker in NETWORK_ERRORS)]
        if lines:
            pytest.skip(f"PyPI unreachable: pip download tritonclient said {lines[0][:300]}")
        _ok(proc, "pip download tritonclient")
    (wheel,) = dest.glob("tritonclient-*.whl")
    return wheel.name.split("-")[1]


@pytest.fixture(scope="module")
def seedlock_wheel(tmp_path_factory, newest_tritonclient) -> Path:
    """What `pip install <checkout>` builds, built once from a copy of the checkout
    (the runs below share it, and nothing is written into the working tree)."""
    base = tmp_path_factory.mktemp("seedlock-src")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "runs", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache", ".ruff_cache",
        "repository", "benchmarks", ".cache", "*.onnx", "*.plan", "*.pt"))
    # Without build isolation where this environment has the build backend (no setuptools download per run).
    isolation = ["--no-build-isolation"] if _has_setuptools(68) else []
    _ok(_pip(sys.executable, "wheel", "--no-deps", *isolation, "-q", "-w", str(base / "wheel"), str(src)), "building seedlock's wheel")
    (wheel,) = (base / "wheel").glob("seedlock-*.whl")
    return wheel


def _has_setuptools(major: int) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return _version(version("setuptools")) >= (major,)
    except PackageNotFoundError:
        return False


def _new_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


def _versions(python: Path, *names: str) -> dict[str, str]:
    code = "import importlib.metadata as m, json, sys; print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))"
    proc = _ok(_run(python, "-c", code, *names), "reading the venv's versions")
    return json.loads(proc.stdout)


def _install_together(path: Path, wheel: Path) -> dict:
    python = _new_venv(path)
    _install(python, str(wheel), "tritonclient[grpc]")
    return {"python": python, "versions": _versions(python, "tritonclient", *SEEDLOCK_NEEDS)}


def _install_client_after(path: Path, wheel: Path) -> dict:
    python = _new_venv(path)
    _install(python, str(wheel))
    before = _versions(python, *SEEDLOCK_NEEDS)
    _install(python, "tritonclient[grpc]")  # after seedlock, as users add a client to a serving environment
    return {"python": python, "versions": _versions(python, "tritonclient", *SEEDLOCK_NEEDS), "before": before}


def _newest(name: str) -> str:
    proc = _ok(_pip(sys.executable, "index", "versions", name, timeout=120), f"pip index versions {name}")
    return proc.stdout.split("(", 1)[1].split(")", 1)[0]  # "kserve (0.21.0)"


def _resolve(wheel: Path, report: Path, server: str) -> dict:
    """pip's resolver only (nothing is installed): the versions it would put into
    an empty environment for seedlock, ``server`` and tritonclient[grpc]; and the
    newest ``server`` there is, which pip must not have backed away from."""
    proc = _pip(sys.executable, "install", "--dry-run", "--ignore-installed", "-q", "--report", str(report), str(wheel), server,
                "tritonclient[grpc]")
    _ok(proc, f"resolving seedlock {server} tritonclient[grpc]")
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in json.loads(report.read_text())["install"]}
    return {"resolved": resolved, "newest": _newest(server)}


@pytest.fixture(scope="module")
def pip_runs(tmp_path_factory, seedlock_wheel) -> dict[str, Future]:
    base = tmp_path_factory.mktemp("coinstall")
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield {
            "together": pool.submit(_install_together, base / "together", seedlock_wheel),
            "after": pool.submit(_install_client_after, base / "after", seedlock_wheel),
            "kserve": pool.submit(_resolve, seedlock_wheel, base / "kserve.json", "kserve"),
            "mlserver": pool.submit(_resolve, seedlock_wheel, base / "mlserver.json", "mlserver"),
        }


ROUND_TRIP = """
import json, sys
import numpy as np, onnxruntime as ort, tritonclient.grpc as tc
address, model_file = sys.argv[1:3]
x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
client = tc.InferenceServerClient(address)
inp = tc.InferInput("image", list(x.shape), "FP32")
inp.set_data_from_numpy(x)
got = client.infer("segmenter", [inp], outputs=[tc.InferRequestedOutput("logits")]).as_numpy("logits")
want = ort.InferenceSession(model_file, providers=["CPUExecutionProvider"]).run(["logits"], {"image": x})[0]
print(json.dumps({"ready": client.is_model_ready("segmenter"), "shape": list(got.shape), "same": got.tobytes() == want.tobytes()}))
"""


def _serve_and_infer(python: Path, repo: Path, tmp_path: Path) -> dict:
    """`seedlock serve` of that venv (its console script) answering that venv's tritonclient."""
    _ok(_run(python, "-c", "import seedlock.serve.server"), "import seedlock.serve.server")
    log = tmp_path / "serve.stderr"
    with log.open("w+") as stderr:
        proc = subprocess.Popen([str(python.parent / "seedlock"), "serve", "--repository", str(repo), "--port", "0", "--threads", "1"],
                                stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=tmp_path, env=_clean_env())
        try:
            address = read_address(proc, stderr)
            call = _run(python, "-c", ROUND_TRIP, address, str(repo / "segmenter" / "1" / "model.onnx"))
            assert call.returncode == 0, f"tritonclient call failed:\n{call.stderr[-3000:]}\nserver:\n{log.read_text()[-3000:]}"
            return json.loads(call.stdout)
        finally:
            proc.terminate()
            proc.wait(timeout=60)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_segmenter_repository(tmp_path_factory.mktemp("coinstall-repo"), name="segmenter", num_classes=4)


def _check_venv(run: dict, newest: str, repo: Path, tmp_path: Path) -> None:
    python, versions = run["python"], run["versions"]
    _ok(_pip(python, "check"), "pip check")
    assert versions["tritonclient"] == newest, f"pip settled on tritonclient {versions['tritonclient']}, the newest is {newest}"
    assert _version(versions["tritonclient"]) >= MIN_TRITONCLIENT
    answer = _serve_and_infer(python, repo, tmp_path)
    assert answer == {"ready": True, "shape": [1, 4, 16, 16], "same": True}, answer


def test_seedlock_and_the_newest_tritonclient_in_one_resolver_run(pip_runs, newest_tritonclient, repo, tmp_path):
    _check_venv(pip_runs["together"].result(), newest_tritonclient, repo, tmp_path)


def test_the_newest_tritonclient_installed_after_seedlock_changes_nothing_seedlock_needs(pip_runs, newest_tritonclient, repo, tmp_path):
    run = pip_runs["after"].result()
    after = {name: run["versions"][name] for name in SEEDLOCK_NEEDS}
    assert after == run["before"], f"installing tritonclient after seedlock changed {run['before']} to {after}"
    _check_venv(run, newest_tritonclient, repo, tmp_path)


@pytest.mark.parametrize("server", ["kserve", "mlserver"])
def test_kserve_and_mlserver_resolve_next_to_seedlock_and_the_newest_tritonclient(pip_runs, newest_tritonclient, server):
    """Each resolves with no conflict (the dry run fails on one). The newest kserve
    and mlserver do not co-install with each other (their fastapi/starlette pins),
    so each is resolved on its own, next to seedlock and tritonclient."""
    run = pip_runs[server].result()
    resolved = run["resolved"]
    assert "seedlock" in resolved, resolved
    assert resolved[server] == run["newest"], f"pip backed away to {server} {resolved[server]}; the newest is {run['newest']}"
    assert resolved["tritonclient"] == newest_tritonclient, resolved
