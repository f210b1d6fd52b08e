"""Every pipeline of the task table, end to end on the CPU, as a user runs it:
train a tiny model with the real trainer (``seedlock train <command>``),
export it (``seedlock export onnx``) twice to identical bytes, check it with
``seedlock export verify`` (with and without ``--checkpoint``), serve it with
a real ``seedlock serve`` process and call it through ``seedlock client``.

Parametrized over :data:`seedlock.core.tasks.TASKS`: a fifth task is covered
as soon as it is in the table (and fails here until tests/pipeline_helpers.py
has its tiny training flags and client call)."""

from __future__ import annotations

import json
import shutil

import pipeline_helpers as ph
import pytest
from conftest import run_cli

from seedlock.core.tasks import TASKS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=TASKS, ids=ph.task_ids)
def pipeline(request, tmp_path_factory):
    """(task, checkpoint, repository): trained and exported once per task."""
    task = request.param
    repository = ph.exported(task, tmp_path_factory)
    return task, ph.train(task, tmp_path_factory), repository


def test_every_table_entry_names_a_task():
    known = {t.name for t in TASKS}
    for table in (ph.TINY_TRAIN, ph.CLIENT_CALLS):
        assert set(table) <= known, f"entries for tasks the table does not have: {sorted(set(table) - known)}"


def test_reexport_is_byte_identical(pipeline, tmp_path):
    task, checkpoint, repository = pipeline
    first = ph.tree_bytes(repository / task.model_name)
    ph.export(checkpoint, tmp_path / "second", task)
    second = ph.tree_bytes(tmp_path / "second" / task.model_name)
    assert "config.pbtxt" in first and "1/manifest.json" in first, sorted(first)
    assert any(name.endswith(".onnx") for name in first), sorted(first)
    assert sorted(second) == sorted(first), "the two exports wrote different files"
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"re-export of the same {task.name} checkpoint changed {differ}"


def test_export_verify_passes(pipeline):
    task, _, repository = pipeline
    proc = run_cli("export", "verify", str(repository / task.model_name), timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "verify: PASS" in proc.stdout and "FAIL" not in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr


def test_export_verify_against_the_checkpoint_passes(pipeline):
    task, checkpoint, repository = pipeline
    proc = run_cli("export", "verify", str(repository / task.model_name), "--checkpoint", str(checkpoint), timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "verify: PASS" in proc.stdout and "FAIL" not in proc.stdout, proc.stdout
    assert "torch" in proc.stdout, f"--checkpoint did not compare against torch:\n{proc.stdout}"
    assert "Traceback" not in proc.stderr, proc.stderr


def test_served_model_answers_through_the_client_deterministically(pipeline, tmp_path):
    task, _, repository = pipeline
    server = ph.start_server(repository, tmp_path)
    try:
        first = ph.call(task, server.address, tmp_path / "first")
        second = ph.call(task, server.address, tmp_path / "second")
        assert first == second, f"two identical {task.name} requests gave different answers"
        models = run_cli("client", "models", "--server", server.address, timeout=120)
        assert models.returncode == 0, models.stderr
        rows = [line.split() for line in models.stdout.splitlines()[1:]]
        assert [task.model_name, "1", "ready", task.name] in [r[:4] for r in rows], models.stdout
        code = server.terminate()
    finally:
        server.kill()
    stderr = server.stderr()
    assert code == 0, f"seedlock serve exited {code} on SIGTERM:\n{stderr[-4000:]}"
    assert "Traceback" not in stderr, stderr[-4000:]


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux) to give the server one core")
def test_answers_do_not_depend_on_the_servers_threads_or_the_hosts_cores(pipeline, tmp_path):
    """Same bytes from a server with --threads 3 (three instances per model) and
    one confined to a single core with no --threads (its default: one instance)."""
    task, _, repository = pipeline
    answers = []
    for name, threads, prefix in (("three", ("--threads", "3"), ()), ("one-core", (), ("taskset", "-c", "0"))):
        folder = tmp_path / name
        folder.mkdir()
        server = ph.start_server(repository, folder, threads=threads, prefix=prefix)
        try:
            answers.append(ph.call(task, server.address, folder))
            models = run_cli("client", "models", "--server", server.address, "--json", timeout=120)
            assert models.returncode == 0, models.stderr
            assert server.terminate() == 0, server.stderr()[-4000:]
        finally:
            server.kill()
        listing = json.loads(models.stdout)
        (version,) = [v for m in listing["models"] if m["name"] == task.model_name for v in m["versions"]]
        assert version["instances"] == (3 if name == "three" else 1), version
    assert answers[0] == answers[1], f"{task.name}: the answer changed with the server's threads and cores"
