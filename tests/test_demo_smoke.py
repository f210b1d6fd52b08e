"""``seedlock demo`` at a tiny budget (``--steps 2``): every stage of the task
table trains, exports, serves and answers through the client; summary.json
has every stage; ``seedlock export verify`` passes on every model it wrote.

About 70 s on 2 busy cores once the music21 corpus cache
(``$SEEDLOCK_CACHE/music``, default ``~/.cache/seedlock/music``) is warm; the
first run on a machine also extracts the corpus (about 4 minutes more)."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from seedlock.core.manifest import Manifest
from seedlock.core.tasks import TASKS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    out, repository = tmp / "out", tmp / "repository"
    proc = run_cli("demo", "--steps", "2", "--out", str(out), "--repository", str(repository), timeout=1200)
    assert proc.returncode == 0, f"seedlock demo exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-6000:]
    return out, repository


def _models(repository):
    return sorted(p for p in repository.iterdir() if (p / "config.pbtxt").is_file())


def test_summary_has_every_stage_and_every_check_held(demo):
    out, repository = demo
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {t.stage for t in TASKS} | {"seconds"}, sorted(summary)
    digests = {Manifest.load(m / "1").digest: m.name for m in _models(repository)}
    for task in TASKS:
        stage = summary[task.stage]
        assert isinstance(stage, dict) and stage, f"{task.stage}: {stage!r}"
        failed = [key for key, value in stage.items() if value is False]
        assert not failed, f"demo stage {task.stage}: {failed} are false"
        assert stage.get("model_digest") in digests, f"{task.stage} reports a model the repository does not hold"


def test_repository_holds_a_model_of_every_task(demo):
    _, repository = demo
    by_name = {m.name: Manifest.load(m / "1") for m in _models(repository)}
    for task in TASKS:
        assert task.model_name in by_name, f"no {task.model_name} in {sorted(by_name)}"
        assert by_name[task.model_name].task == task.name


def test_export_verify_passes_on_every_model_the_demo_wrote(demo):
    _, repository = demo
    models = _models(repository)
    assert len(models) >= len(TASKS), [m.name for m in models]
    for model in models:
        proc = run_cli("export", "verify", str(model), timeout=300)
        assert proc.returncode == 0, f"export verify {model.name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        assert "verify: PASS" in proc.stdout and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
