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
        import yaml

        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise UserError(f"{path} must hold a mapping of option: value")
        return cls.from_dict(data)


def need(ok: bool, message: str) -> None:
    """For ``validate`` methods: raise :class:`UserError` with ``message`` unless ``ok``."""
    if not ok:
        raise UserError(message)


def is_int(value: Any) -> bool:
    """A real integer (``True`` is not a step count)."""
    return isinstance(value, int) and not isinstance(value, bool)
