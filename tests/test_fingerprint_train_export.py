"""Fingerprint DCGAN end to end, tiny: training artifacts, seed-locked weights,
ONNX export parity on the serving latents, the similarity report and the CLI
handlers (called through their own argparse registration: the dispatcher
wires them in seedlock.cli / train.cli / export.cli)."""

import argparse
import json

import numpy as np
import pytest
import torch
from conftest import run_cli

from seedlock.core.errors import UserError
from seedlock.core.fingerprints import generator_index, latents, select_generator, to_uint8
from seedlock.core.imaging import read_image

TINY = dict(
    latent_dim=16, g_width=4, d_width=4, batch_size=4, n_per_quality=6, steps=3,
    samples=8, log_every=1, threads=1, progress=False,
)  # fmt: skip
ARTIFACTS = [
    "checkpoint.pt", "config.json", "metrics.json", "data_samples.png", "samples_start.png",
    "samples_middle.png", "samples_end.png", "samples_progress.png", "loss_curves.png",
]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def train(out, **overrides):
    from seedlock.train.fingerprint_gan import FingerprintGANConfig, train_fingerprint_gan

    return train_fingerprint_gan(FingerprintGANConfig(out=str(out), **{**TINY, **overrides}), log=lambda _: None)


def parse(register, argv):
    parser = argparse.ArgumentParser(prog="seedlock")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def run_all(tmp_path_factory):
    return train(tmp_path_factory.mktemp("all"), seed=11)


@pytest.fixture(scope="module")
def run_each(tmp_path_factory):
    """Per-quality DCGANs with bi-activations, hinge loss and Eq. 5 regularization, via the CLI handler."""
    from seedlock.train.fingerprint_cli import register_train

    out = tmp_path_factory.mktemp("each")
    flags = []
    for key, value in TINY.items():
        if key == "progress":
            flags.append("--no-progress")
        else:
            flags += [f"--{key.replace('_', '-')}", str(value)]
    args = parse(register_train, ["fingerprint-gan", *flags, "--mode", "each", "--g-activation", "bi-elu",
                                  "--d-activation", "bi-relu", "--loss", "hinge", "--exp-reg", "0.5",
                                  "--qualities", "Q1,Q3,Q5", "--steps", "2", "--out", str(out)])  # fmt: skip
    assert args.func(args) == 0
    return out


def test_training_writes_every_artifact(run_all):
    for name in ARTIFACTS:
        assert (run_all / name).is_file(), name
    # the one seedlock checkpoint format: the generator bank is the model, the discriminators ride in extra
    data = torch.load(run_all / "checkpoint.pt", weights_only=True)
    assert data["format"] == "seedlock-checkpoint/1" and data["task"] == "fingerprint-generation"
    assert data["preprocess"]["qualities"] == ["Q1", "Q2", "Q3", "Q5"] and data["preprocess"]["mode"] == "all"
    assert data["labels"] == ["all"] and data["seed"] == 11
    assert data["state_dict"] and data["extra"]["discriminator"] and data["model_config"]["latent_dim"] == 16
    metrics = json.loads((run_all / "metrics.json").read_text())
    assert [h["step"] for h in metrics["history"]["all"]] == [1, 2, 3]
    sim = metrics["similarity"]["real_vs_generated"]
    assert {"hamming", "pearson", "iou", "mean_std"} <= set(sim)
    assert json.loads((run_all / "config.json").read_text())["seed"] == 11
    grid = read_image(run_all / "samples_end.png")
    assert grid.shape[0] > 64 and grid.shape[1] > 64 * 4


def test_sample_grid_shows_the_serving_latents(run_all):
    """samples_end.png is the eval-mode generator on latents(seed, n): what the server returns for that seed."""
    from seedlock.core.fingerprints import tile
    from seedlock.train.fingerprint_gan import generate, load_generator_checkpoint

    ckpt = load_generator_checkpoint(run_all)
    imgs = to_uint8(generate(ckpt.generator, latents(11, 8, 16))[:, 0])
    np.testing.assert_array_equal(read_image(run_all / "samples_end.png")[:, :, 0], tile(imgs, cols=8))


def test_same_seed_same_weights(run_all, tmp_path):
    again = train(tmp_path / "again", seed=11)
    a = torch.load(run_all / "checkpoint.pt", weights_only=True)
    b = torch.load(again / "checkpoint.pt", weights_only=True)
    for name, part in (("generator", lambda d: d["state_dict"]), ("discriminator", lambda d: d["extra"]["discriminator"])):
        assert part(a).keys() == part(b).keys()
        for k in part(a):
            assert torch.equal(part(a)[k], part(b)[k]), f"{name}.{k}"
    other = torch.load(train(tmp_path / "other", seed=12) / "checkpoint.pt", weights_only=True)
    gen_a, gen_other = a["state_dict"], other["state_dict"]
    assert any(not torch.equal(gen_a[k], gen_other[k]) for k in gen_a if gen_a[k].is_floating_point())


def test_per_quality_checkpoint(run_each):
    from seedlock.train.fingerprint_gan import load_generator_checkpoint

    ckpt = load_generator_checkpoint(run_each)
    assert ckpt.per_quality and ckpt.generators == ["Q1", "Q3", "Q5"] and ckpt.mode == "each"
    assert ckpt.model_config.g_activation == "bi-elu"
    assert ckpt.generator(torch.from_numpy(latents(0, 2, 16))).shape == (2, 3, 64, 64)
    metrics = json.loads((run_each / "metrics.json").read_text())
    assert set(metrics["history"]) == {"Q1", "Q3", "Q5"}
    assert "exp" not in metrics["history"]["Q1"][0]  # history keeps the totals; terms are per step


def test_checkpoint_loads_through_the_one_loader(run_each):
    """train.checkpoint.load_checkpoint rebuilds the generator bank with the task's build_model."""
    from seedlock.train.checkpoint import load_checkpoint
    from seedlock.train.dcgan import GeneratorBank

    ckpt = load_checkpoint(run_each)
    assert ckpt.task == "fingerprint-generation" and ckpt.labels == ["Q1", "Q3", "Q5"]
    assert isinstance(ckpt.model, GeneratorBank) and ckpt.model.names == ["Q1", "Q3", "Q5"] and not ckpt.model.training
    assert ckpt.preprocess == {"mode": "each", "qualities": ["Q1", "Q3", "Q5"]}
    assert ckpt.extra["discriminator"] and ckpt.model_config["latent_dim"] == 16


def test_checkpoint_errors(tmp_path, tiny_checkpoint):
    from seedlock.train.fingerprint_gan import load_generator_checkpoint

    with pytest.raises(UserError, match="not found"):
        load_generator_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_generator_checkpoint(bad)
    # a real segmentation checkpoint: it loads, and is named for what it holds
    with pytest.raises(UserError, match="holds a 'segmentation' model, not a fingerprint GAN"):
        load_generator_checkpoint(tiny_checkpoint)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(UserError, match="is not a seedlock checkpoint"):
        load_generator_checkpoint(foreign)


def test_train_cli_errors(tmp_path):
    from seedlock.train.fingerprint_cli import register_train

    args = parse(register_train, ["fingerprint-gan", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    with pytest.raises(UserError, match="no such folder"):
        args.func(args)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("steps: 3\nwidth: 9\n")
    args = parse(register_train, ["fingerprint-gan", "--config", str(cfg)])
    with pytest.raises(UserError, match="unknown fingerprint-gan config key"):
        args.func(args)
    with pytest.raises(SystemExit):
        parse(register_train, ["fingerprint-gan", "--size", "96"])


@pytest.fixture(scope="module")
def exported(run_each, tmp_path_factory):
    """run_each exported as ``fp`` with `seedlock export fingerprint-gan`, run as a user would."""
    repo = tmp_path_factory.mktemp("exported") / "repo"
    proc = run_cli("export", "fingerprint-gan", str(run_each), "--repository", str(repo), "--name", "fp", "--max-count", "16",
                   env={"OMP_NUM_THREADS": "1"}, check=True)  # fmt: skip
    return repo, proc


def test_export_matches_torch_on_serving_latents(exported, run_each):
    import onnxruntime as ort

    from seedlock.core.repository import load_version
    from seedlock.export.verify import verify_model
    from seedlock.train.fingerprint_gan import load_generator_checkpoint

    repo, proc = exported
    assert "PASS" in proc.stdout and "FAIL" not in proc.stdout
    mv = load_version(repo, "fp")
    m = mv.manifest
    assert m.task == "fingerprint-generation" and m.seed == 777
    assert [t.shape for t in m.graph().inputs] == [[-1, 16]]
    assert [t.shape for t in m.graph().outputs] == [[-1, 3, 64, 64]]
    assert m.preprocess["latent_dim"] == 16 and m.preprocess["max_count"] == 16
    assert m.postprocess["generators"] == ["Q1", "Q3", "Q5"] and m.postprocess["per_quality"]
    assert m.metrics["export_parity_max_abs"] <= 1e-4
    assert (repo / "fp" / "config.pbtxt").is_file()
    # the parity reference lives in the manifest's reference section, not in preprocess/postprocess
    assert "reference" not in m.preprocess and "reference" not in m.postprocess
    graph_ref = m.reference["graphs"]["model"]
    assert graph_ref == {"inputs": {"latent": "reference.model.latent.npy"}, "outputs": {"image": "reference.model.image.npy"}}
    assert sorted(m.files) == ["model.onnx", "reference.model.image.npy", "reference.model.latent.npy", "reference.runtime.model.image.npy"]
    assert m.reference["runtime"] == {"model": {"image": "reference.runtime.model.image.npy"}}
    np.testing.assert_array_equal(np.load(mv.folder / graph_ref["inputs"]["latent"]), latents(20201, 4, 16))
    assert m.reference["task"] == {"latents": {"seed": 20201, "count": 4, "file": "reference.model.latent.npy"}}

    session = ort.InferenceSession(mv.path().read_bytes(), providers=["CPUExecutionProvider"])
    model = load_generator_checkpoint(run_each).generator
    z = latents(123, 5, 16)  # what a Generate(seed=123, count=5) request feeds
    got = session.run(["image"], {"latent": z})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(z)).numpy()
    assert np.abs(got - want).max() <= 1e-4
    again = session.run(["image"], {"latent": latents(123, 5, 16)})[0]
    np.testing.assert_array_equal(got, again)  # same seed, same bytes
    q5 = to_uint8(select_generator(got, generator_index(m.postprocess, "Q5")))
    assert q5.shape == (5, 64, 64) and q5.dtype == np.uint8
    verify_model(repo / "fp", log=lambda _: None)


def test_exported_manifest_is_the_spec_round_trip(exported):
    from seedlock.core.fingerprints import FingerprintSpec
    from seedlock.core.repository import load_version

    m = load_version(exported[0], "fp").manifest
    spec = FingerprintSpec.from_manifest(m)
    assert (spec.latent_dim, spec.image_size, spec.generators, spec.qualities, spec.max_count) == (16, 64, ("Q1", "Q3", "Q5"), ("Q1", "Q3", "Q5"), 16)
    assert spec.to_manifest() == {"preprocess": m.preprocess, "postprocess": m.postprocess, "labels": m.labels}


def test_reexport_is_byte_identical(exported, run_each, tmp_path):
    """The CLI export above and an in-process export of the same checkpoint: every file, byte for byte."""
    from seedlock.export.fingerprint import export_generator

    first = exported[0]
    result = export_generator(run_each, tmp_path / "again", name="fp", max_count=16, log=lambda _: None)
    assert result.folder == tmp_path / "again" / "fp" / "1" and result.details["uint8_mismatch_pixels"] >= 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    assert len(files) == 6  # config.pbtxt, manifest.json, model.onnx, the two torch reference arrays and ONNX Runtime's output
    for rel in files:
        assert (first / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel


def test_export_verify_cli(exported, run_each):
    repo = exported[0]
    proc = run_cli("export", "verify", str(repo / "fp"), env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "verify: PASS" in proc.stdout and "FAIL" not in proc.stdout
    assert "model/image stored reference" in proc.stdout and "latents(seed 20201, count 4)" in proc.stdout
    proc = run_cli("export", "verify", str(repo / "fp"), "--checkpoint", str(run_each), env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "verify: PASS" in proc.stdout and "model/image fresh b3: torch vs onnxruntime" in proc.stdout and "FAIL" not in proc.stdout


def test_verify_checks_the_latent_rule(exported):
    """The task-level reference: stored latents == what latents() draws for their seed, exactly."""
    from seedlock.core.fingerprints import FingerprintSpec
    from seedlock.core.repository import load_version

    mv = load_version(exported[0], "fp")
    spec = FingerprintSpec.from_manifest(mv.manifest)
    task = mv.manifest.reference["task"]
    [(case, expected, actual)] = spec.check_reference({}, mv.folder, task)
    assert case == "latents(seed 20201, count 4)" and expected.dtype == np.float32
    np.testing.assert_array_equal(expected, actual)
    # a drifted rule (here: the stored batch no longer matches its recorded seed) shows up as a difference
    [(_, expected, actual)] = spec.check_reference({}, mv.folder, {"latents": {**task["latents"], "seed": 1}})
    assert np.abs(expected - actual).max() > 0.1


def export_parse(argv):
    from seedlock.export.cli import register

    return parse(register, ["export", *argv])


def test_export_cli_errors_are_one_line(tmp_path, tiny_checkpoint):
    args = export_parse(["fingerprint-gan", str(tmp_path / "missing.pt"), "--repository", str(tmp_path / "r")])
    with pytest.raises(UserError, match="does not exist"):
        args.func(args)
    (tmp_path / "bad.pt").write_bytes(b"junk")
    proc = run_cli("export", "fingerprint-gan", str(tmp_path / "bad.pt"), "--repository", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a readable checkpoint" in proc.stderr
    assert not (tmp_path / "r").exists()
    # a torch file that is no seedlock checkpoint: one line, and nothing written
    torch.save({"generator": {"w": torch.zeros(2)}}, tmp_path / "foreign.pt")
    proc = run_cli("export", "fingerprint-gan", str(tmp_path / "foreign.pt"), "--repository", str(tmp_path / "r"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "is not a seedlock checkpoint" in proc.stderr
    assert not (tmp_path / "r").exists()
    # another task's checkpoint says what it holds and which export takes it
    args = export_parse(["fingerprint-gan", str(tiny_checkpoint), "--repository", str(tmp_path / "r")])
    with pytest.raises(UserError, match="holds a 'segmentation' model, not a 'fingerprint-generation' one; export it with `seedlock export segment`"):
        args.func(args)
    assert not (tmp_path / "r").exists()
    # the task's option is refused on another task's checkpoint
    args = export_parse(["onnx", str(tiny_checkpoint), "--repository", str(tmp_path / "r"), "--max-count", "8"])
    with pytest.raises(UserError, match="--max-count do\\(es\\) not apply to a segmentation model"):
        args.func(args)
    assert not (tmp_path / "r").exists()


def test_similarity_command_on_two_sets(tmp_path, run_all):
    from seedlock.train.data.fingerprints import make_fingerprints
    from seedlock.train.similarity_cli import register

    np.save(tmp_path / "a.npy", make_fingerprints(0, "Q1", 6, 64))
    out = tmp_path / "report"
    args = parse(register, ["similarity", str(tmp_path / "a.npy"), "embedded:Q1,Q2", "--count", "6", "--out", str(out)])
    assert args.func(args) == 0
    for name in ("similarity.md", "similarity.json", "mean_std_scatter.png", "samples.png"):
        assert (out / name).is_file(), name
    result = json.loads((out / "similarity.json").read_text())["result"]
    assert result["pairs"] == 36 and "ink = grey < 128" in result["binarization"]
    args = parse(register, ["similarity", str(run_all), "embedded", "--count", "8", "--out", str(tmp_path / "gen")])
    assert args.func(args) == 0
    with pytest.raises(UserError, match="two sets"):
        args = parse(register, ["similarity", str(tmp_path / "a.npy")])
        args.func(args)


def test_table18_experiment(tmp_path, run_all, run_each):
    from seedlock.train.similarity_cli import register

    out = tmp_path / "t18"
    # run_each covers Q1, Q3, Q5 only: setting II needs every quality of the all-quality model
    args = parse(register, ["similarity", "--table18", "--all-quality", str(run_all), "--each-quality", str(run_each), "--total", "40", "--out", str(out)])
    with pytest.raises(UserError, match="no generator for Q2"):
        args.func(args)
    args = parse(register, ["similarity", "--table18", "--all-quality", str(run_all), "--total", "40", "--out", str(out)])
    assert args.func(args) == 0
    report = json.loads((out / "table18.json").read_text())
    assert list(report["results"]) == ["I-I", "I-III", "I-IV"]  # II needs a per-quality model
    assert report["settings"]["III"] == {"generated (all-quality DCGAN)": 32, "actual": 8}
    assert report["results"]["I-I"]["pairs"] == 1600
    md = (out / "table18.md").read_text()
    assert "Table 17" in md and "Table 18" in md and "I-IV" in md
    assert (out / "mean_std_scatter.png").is_file() and (out / "settings_samples.png").is_file()
    with pytest.raises(UserError, match="--mode each"):
        args = parse(register, ["similarity", "--table18", "--all-quality", str(run_all), "--each-quality", str(run_all)])
        args.func(args)


def test_table18_with_every_setting(tmp_path, run_all):
    from seedlock.train.fingerprint_gan import load_generator_checkpoint
    from seedlock.train.similarity_report import build_settings

    each = train(tmp_path / "each4", mode="each", steps=1)
    g_all, g_each = load_generator_checkpoint(run_all), load_generator_checkpoint(each)
    zeros = lambda q, n, off: np.full((n, 64, 64), 200 + off % 50, np.uint8)  # noqa: E731
    settings = build_settings(g_all, g_each, zeros, ["Q1", "Q2", "Q3", "Q5"], total=20, actual_fraction=0.2)
    assert list(settings) == ["I", "II", "III", "IV"]
    assert settings["II"].composition == {"generated (per-quality DCGANs)": 16, "actual": 4}
    assert all(len(s.images) == 20 for s in settings.values())


def test_bench_similarity_writes_json(tmp_path):
    from seedlock.bench_fingerprint import register_bench

    path = tmp_path / "bench.json"
    args = parse(register_bench, ["similarity", "--n", "20", "--size", "16", "--runs", "2", "--json", str(path)])
    assert args.func(args) == 0
    report = json.loads(path.read_text())
    assert report["pairs"] == 400 and report["median_ms"] > 0 and report["runs"] == 2
