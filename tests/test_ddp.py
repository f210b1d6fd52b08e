"""Two-process DistributedDataParallel (gloo) run of the real CLI under torchrun."""

import json
import os
import subprocess
import sys

import pytest
import torch


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "seedlock", "train", "segment",
        "--size", "32", "--width", "4", "--depth", "2", "--n-train", "8", "--n-val", "4",
        "--batch-size", "2", "--epochs", "2", "--threads", "1", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "checkpoint.pt").is_file() and (out / "val_prediction.png").is_file()
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2
    # 8 samples over 2 ranks, batch 2 per rank: 2 steps per epoch, 2 epochs
    assert m["steps"] == 4 and [e["steps"] for e in m["epochs"]] == [2, 4]
    assert m["val"]["pixels"] == 4 * 32 * 32
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["task"] == "segmentation" and ckpt["seed"] == 777
    assert proc.stdout.count("trained U-Net segmenter") == 1  # only rank 0 reports
