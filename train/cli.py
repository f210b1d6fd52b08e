"""``seedlock train TASK ...``: one subcommand per task of the task table
(:data:`seedlock.core.tasks.TASKS`), each registered by the task's train module.

Building the parser imports no torch (``seedlock --help`` works in the serving
image); the handlers import it when they run.
"""

from __future__ import annotations

from typing import Any

from seedlock.core import tasks


def register(subparsers: Any) -> None:
    train = subparsers.add_parser(
        "train",
        help=f"train a model ({tasks.commands()}) on embedded or your own data",
        description="Train seed-locked models. The same config and seed give bit-identical weights.",
    )
    sub = train.add_subparsers(dest="train_command", metavar="TASK")
    for task in tasks.TASKS:
        task.module("train").register_train(sub)
    train.set_defaults(func=lambda args: (train.print_help(), 2)[1])
