"""What every pipeline's config dataclass shares: dict and YAML/JSON round trips
with one-line errors (DESIGN.md: a dataclass per pipeline, filled from CLI flags
or a YAML file; the resolved config is saved next to every checkpoint)."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from seedlock.core.errors import UserError

C = TypeVar("C", bound="ConfigFile")


class ConfigFile:
    """Mixin for ``@dataclass`` configs. ``KIND`` names the pipeline in messages."""

    KIND: ClassVar[str] = "run"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"unknown {cls.KIND} config key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
        return cls(**data)

    @classmethod
    def from_file(cls: type[C], path: str | Path) -> C:
        """A YAML (or JSON) mapping of field names to values; a run's config.json works."""
        return cls.from_dict(read_config_file(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) config file, with one-line errors."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"{path} is not a readable YAML file: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of option: value")
    return data


def config_from_args(cls: type[C], args: Any, base: C | None = None) -> C:
    """The one way a command's flags become a config, in increasing priority:
    ``base`` (default: the dataclass defaults), ``--config FILE``
    (``args.config``), then every flag given on the command line whose
    ``dest`` is a config field. Flags are registered with
    ``default=argparse.SUPPRESS``, so a flag not given never overrides the file."""
    data = base.to_dict() if base is not None else {}
    path = getattr(args, "config", None)
    if path:
        data.update({str(k).replace("-", "_"): v for k, v in read_config_file(path).items()})
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    data.update({k: v for k, v in vars(args).items() if k in names})
    return cls.from_dict(data)


def need(ok: bool, message: str) -> None:
    """For ``validate`` methods: raise :class:`UserError` with ``message`` unless ``ok``."""
    if not ok:
        raise UserError(message)


def is_int(value: Any) -> bool:
    """A real integer (``True`` is not a step count)."""
    return isinstance(value, int) and not isinstance(value, bool)

