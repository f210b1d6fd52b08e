"""Data splits never follow the model seed: every training command takes
``--split-seed`` (``--data-seed`` where it also seeds the embedded data)."""

from __future__ import annotations

import pytest

from seedlock.cli import build_parser


@pytest.mark.parametrize("task, dest", [("segment", "data_seed"), ("caption", "data_seed"), ("fingerprint-gan", "data_seed"), ("compose", "split_seed")])
def test_split_seed_is_its_own_flag(task, dest):
    args = build_parser("train").parse_args(["train", task, "--seed", "5", "--split-seed", "3"])
    assert getattr(args, dest) == 3 and args.seed == 5
