"""The serving install (``pip install seedlock``: no ``[train]`` extra) serves
every task. Every process here runs with a sitecustomize.py that makes torch,
onnx, onnxscript and matplotlib un-importable, as in that install: one
``seedlock serve`` on a repository holding a model of every task of the table,
every task's client CLI against it; and ``seedlock train`` / ``seedlock export
onnx`` there say in one line which extra to install."""

from __future__ import annotations

import os
import shutil

import pipeline_helpers as ph
import pytest
from conftest import run_cli

from seedlock.core.tasks import TASKS

pytestmark = pytest.mark.slow

BLOCKED = ("torch", "onnx", "onnxscript", "matplotlib")


@pytest.fixture(scope="module")
def serving_env(tmp_path_factory) -> dict[str, str]:
    hook = tmp_path_factory.mktemp("serving-install")
    (hook / "sitecustomize.py").write_text(ph.blocking_sitecustomize(BLOCKED))
    return {"PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.fixture(scope="module")
def every_task_repository(tmp_path_factory) -> dict:
    """One repository with each task's tiny model (trained and exported with the
    real CLI, shared with test_pipelines.py when both run in one session)."""
    repo = tmp_path_factory.mktemp("every-task")
    for task in TASKS:
        shutil.copytree(ph.exported(task, tmp_path_factory) / task.model_name, repo / task.model_name)
    return repo


def _python(env: dict, code: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **env})


@pytest.mark.parametrize("module", BLOCKED)
def test_the_block_works(serving_env, module):
    proc = _python(serving_env, f"import {module}")
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr and module in proc.stderr, proc.stderr
    proc = _python(serving_env, f"import importlib.util; assert importlib.util.find_spec({module!r}) is None")
    assert proc.returncode == 0, proc.stderr
    proc = _python(serving_env, "import numpy, onnxruntime, grpc, music21, cv2")  # the serving stack is all there
    assert proc.returncode == 0, proc.stderr


def test_one_server_serves_every_task_without_the_train_extra(serving_env, every_task_repository, tmp_path):
    server = ph.start_server(every_task_repository, tmp_path, env=serving_env)
    try:
        models = run_cli("client", "models", "--server", server.address, env=serving_env, timeout=120)
        assert models.returncode == 0, models.stderr
        rows = [line.split()[:4] for line in models.stdout.splitlines()[1:]]
        for task in TASKS:
            assert [task.model_name, "1", "ready", task.name] in rows, (
                f"{task.name} not served:\n{models.stdout}\n{server.stderr()[-4000:]}"
            )
        answers = {}
        for task in TASKS:
            # ph.call checks exit 0, no INTERNAL, and that the answer is real
            answers[task.name] = ph.call(task, server.address, tmp_path / task.stage, env=serving_env)
            assert answers[task.name], task.name
        code = server.terminate()
    finally:
        server.kill()
    stderr = server.stderr()
    assert code == 0, f"seedlock serve exited {code} on SIGTERM:\n{stderr[-4000:]}"
    assert "Traceback" not in stderr and "INTERNAL" not in stderr, stderr[-4000:]
    for module in BLOCKED:
        assert f"No module named '{module}" not in stderr, stderr[-4000:]


def _assert_names_the_extra(proc, what: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, f"{what} exited {proc.returncode} (expected 2):\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert len(lines) == 1, f"{what} printed {len(lines)} lines on stderr, not one:\n{proc.stderr}"
    assert "seedlock[train]" in lines[0], lines[0]


@pytest.mark.parametrize("task", TASKS, ids=ph.task_ids)
def test_train_without_the_extra_names_it_in_one_line(serving_env, task, tmp_path):
    proc = run_cli("train", task.command, "--out", str(tmp_path / "run"), env=serving_env, timeout=120)
    _assert_names_the_extra(proc, f"seedlock train {task.command}")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize("task", TASKS, ids=ph.task_ids)
def test_export_without_the_extra_names_it_in_one_line(serving_env, task, tmp_path_factory, tmp_path):
    checkpoint = ph.train(task, tmp_path_factory)  # a real checkpoint: only the missing extra stops it
    proc = run_cli("export", "onnx", str(checkpoint), "--repository", str(tmp_path / "repo"), env=serving_env, timeout=120)
    _assert_names_the_extra(proc, f"seedlock export onnx ({task.name})")
    assert not (tmp_path / "repo" / task.model_name / "1").exists()
