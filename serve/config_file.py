"""``seedlock serve --config FILE``: the serve flags from a YAML file.

Every flag of ``seedlock serve`` is a key: its long name without the leading
dashes (``max-queue``, ``tls-cert``; ``max_queue`` is accepted too). The keys
are read off the argparse parser itself, so a new flag is a new key. Values
are what the flag takes (a YAML number or string; a list for comma-separated
flags such as ``models``, and for repeatable ones such as ``load-model``); switches take ``true``/``false``; ``null`` leaves
the default. The file's settings become flags placed before the command
line's, so a flag given on the command line wins. Unknown keys and values the
flag would refuse are a one-line error naming the key.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import yaml

from seedlock.core.errors import UserError

CONFIG_FLAG = "--config"
# Actions that are not settings.
_SKIPPED = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)


def settings(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every config key of ``parser`` (a flag's first long name without its dashes) and its action."""
    keys: dict[str, argparse.Action] = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if isinstance(action, _SKIPPED) or not longs or longs[0] == CONFIG_FLAG:
            continue
        keys[longs[0][2:]] = action
    return keys


def config_path(argv: Sequence[str]) -> str | None:
    """The FILE of ``--config FILE`` (or ``--config=FILE``) among a command's arguments."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument(CONFIG_FLAG)
    found, _ = pre.parse_known_args(list(argv))
    return found.config


def load(path: str | Path) -> dict[str, Any]:
    """The file's mapping (empty for an empty file); a missing file or bad YAML is a :class:`UserError`."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise UserError(f"the config file {path} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"the config file {path} must be a mapping of flag names to values, not a {type(data).__name__}")
    return data


def _scalar(value: Any, key: str, path: str | Path) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        what = "true/false" if isinstance(value, bool) else type(value).__name__
        raise UserError(f"{path}: key '{key}' takes a value (a number or a string), not {what}")
    return str(value)


def tokens_for(key: str, action: argparse.Action, value: Any, parser: argparse.ArgumentParser, path: str | Path) -> list[str]:
    """The command-line arguments that set ``key`` to ``value``, checked by the flag's own type and choices."""
    flag = action.option_strings[0] if action.option_strings[0].startswith("--") else f"--{key}"
    if value is None:
        return []
    if action.nargs == 0:  # a switch: store_true/false, or --x/--no-x
        if not isinstance(value, bool):
            raise UserError(f"{path}: key '{key}' is a switch: give true or false, not {value!r}")
        if isinstance(action, argparse.BooleanOptionalAction):
            return [flag if value else f"--no-{flag[2:]}"]
        # store_true / store_false: only the value that differs from the default needs the flag
        return [flag] if value != action.default else []
    if isinstance(value, list) and isinstance(action, argparse._AppendAction) and action.nargs is None:
        # a repeatable flag (--load-model A --load-model B): one flag per item
        return [token for item in value for token in tokens_for(key, action, item, parser, path)]
    if isinstance(value, list):
        items = [_scalar(v, key, path) for v in value]
        values = items if action.nargs not in (None, "?") else [",".join(items)]  # comma-separated flags
    else:
        values = [_scalar(value, key, path)]
    try:
        parser._get_values(action, values)  # the flag's type and choices, as the command line checks them
    except argparse.ArgumentError as exc:
        raise UserError(f"{path}: key '{key}': {exc.message}") from None
    return [flag, *values]


def as_arguments(parser: argparse.ArgumentParser, data: dict[str, Any], path: str | Path) -> list[str]:
    """The config file ``data`` as command-line arguments for ``parser``."""
    known = settings(parser)
    arguments: list[str] = []
    seen: dict[str, str] = {}
    for raw, value in data.items():
        key = str(raw).replace("_", "-")
        if key == CONFIG_FLAG[2:]:
            raise UserError(f"{path}: a config file cannot name another (key 'config')")
        action = known.get(key)
        if action is None:
            raise UserError(f"{path}: unknown key {str(raw)!r}; valid keys: {', '.join(sorted(known))}")
        if key in seen:
            raise UserError(f"{path}: key '{key}' is given twice (as {seen[key]!r} and {str(raw)!r})")
        seen[key] = str(raw)
        arguments += tokens_for(key, action, value, parser, path)
    return arguments


def expand(parser: argparse.ArgumentParser, argv: Sequence[str], command: str) -> list[str]:
    """``argv`` with the settings of ``command``'s ``--config FILE`` put right
    after the command word, so the flags that follow on the command line override them.
    ``parser`` is the command's own (sub)parser."""
    argv = list(argv)
    at = argv.index(command)
    path = config_path(argv[at + 1 :])
    if path is None:
        return argv
    return argv[: at + 1] + as_arguments(parser, load(path), path) + argv[at + 1 :]


def subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of ``command`` under the top-level ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)
