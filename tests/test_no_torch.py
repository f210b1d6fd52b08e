"""serve and clients (and core) import and run where torch cannot be imported,
as in the deployment image."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Loaded first in every Python process of these tests: any import of torch fails.
BLOCK_TORCH = textwrap.dedent(
    """
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"{name} is blocked: serving code must not import torch")
            return None

    sys.meta_path.insert(0, _NoTorch())
    """
)

IMPORT_ALL = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    import seedlock.core, seedlock.serve, seedlock.clients, seedlock.protos
    names = []
    for pkg in (seedlock.core, seedlock.serve, seedlock.clients, seedlock.protos):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(info.name)
            names.append(info.name)
    assert "torch" not in sys.modules
    print(len(names), " ".join(sorted(names)))
    """
)


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory) -> dict[str, str]:
    hook = tmp_path_factory.mktemp("notorch")
    (hook / "sitecustomize.py").write_text(BLOCK_TORCH)
    return {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def run(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, env=env, cwd=Path(__file__).parent)


def test_the_block_works(no_torch_env):
    proc = run(no_torch_env, "-c", "import torch")
    assert proc.returncode != 0 and "blocked" in proc.stderr


def test_every_core_serve_clients_module_imports_without_torch(no_torch_env):
    proc = run(no_torch_env, "-c", IMPORT_ALL)
    assert proc.returncode == 0, proc.stderr
    names = proc.stdout.split()[1:]
    for expected in ("seedlock.serve.server", "seedlock.serve.scheduler", "seedlock.clients.cli", "seedlock.protos.inference.grpc_service_pb2"):
        assert expected in names


@pytest.mark.parametrize("command", [["serve", "--help"], ["client", "--help"], ["client", "segment", "--help"], ["bench", "serve", "--help"]])
def test_cli_help_without_torch(no_torch_env, command):
    proc = run(no_torch_env, "-m", "seedlock", *command)
    assert proc.returncode == 0, proc.stderr
    assert "usage: seedlock" in proc.stdout


def test_engine_building_and_backend_comparison_need_no_torch(no_torch_env, segmenter_repository, tmp_path):
    """`export trt` and `export verify --backends` run in the GPU image, which has
    onnx and TensorRT but no torch: they import without it and fail only for
    the reason this host has (no TensorRT / GPU here), not for torch."""
    imports = "import seedlock.export.tensorrt_engine, seedlock.export.backends, seedlock.backends_bench, sys; assert 'torch' not in sys.modules"
    proc = run(no_torch_env, "-c", imports)
    assert proc.returncode == 0, proc.stderr
    import shutil

    repo = shutil.copytree(segmenter_repository, tmp_path / "repository")  # a GPU host writes engines into it
    proc = run(no_torch_env, "-m", "seedlock", "export", "trt", str(repo / "segmenter"))
    assert "torch" not in proc.stderr, proc.stderr
    if proc.returncode != 0:
        assert proc.returncode == 2 and ("TensorRT" in proc.stderr or "GPU" in proc.stderr), proc.stderr
