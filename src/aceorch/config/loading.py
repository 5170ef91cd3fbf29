"""Loading the settings once for a process: reading ``.env``, hinting at misspelt names, and reporting every invalid
variable on its own line (``config error: NAME='value': accepted values``) in one :class:`~aceorch.errors.ConfigError`.
"""

from __future__ import annotations

import difflib
import enum
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from aceorch.config.settings import SECRET_FIELDS, Settings, flat_fields
from aceorch.config.types import PortRange
from aceorch.errors import ConfigError

__all__ = ["load_settings", "accepted_values"]

logger = logging.getLogger("aceorch.config")

#: How alike an unknown ``.env`` name must be to a setting's name to be hinted as a misspelling of it.
_HINT_CUTOFF = 0.8


def accepted_values(info: FieldInfo) -> str:
    """What a setting accepts, as the tail of its ``config error:`` line (``must be an integer from 1 to 600``)."""
    bounds: dict[str, Any] = {}
    for meta in info.metadata:
        for key in ("ge", "gt", "le", "lt"):
            if getattr(meta, key, None) is not None:
                bounds[key] = getattr(meta, key)
    if bounds:
        kind = "an integer" if info.annotation is int else "a number"
        low = f"from {bounds['ge']}" if "ge" in bounds else f"above {bounds.get('gt')}"
        high = f"to {bounds['le']}" if "le" in bounds else f"below {bounds.get('lt')}"
        return f"must be {kind} {low} {high}"
    ann = info.annotation
    if ann is bool:
        return "must be a boolean (true/false/1/0/yes/no)"
    if ann is PortRange:
        return "must be a range A-B with 1 ≤ A ≤ B ≤ 65535"
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return "must be one of " + ", ".join(m.value for m in ann)
    return "is invalid"


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build the settings once, for ``serve`` or ``create_app``. Raises ConfigError listing every problem."""
    raw: dict[str, str] = {k.upper(): v for k, v in os.environ.items()}
    file_values: dict[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        file_values = _read_env_file(Path(env_file))
        for key, value in file_values.items():
            raw.setdefault(key.upper(), value or "")
    known = Settings.env_names()
    for key in file_values:
        if key.upper() in known:
            continue
        close = difflib.get_close_matches(key.upper(), known, n=1, cutoff=_HINT_CUTOFF)
        if close:
            logger.warning("unknown setting %s in %s; did you mean %s?", key, env_file, close[0])
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, raw)) from None


def _format_validation(exc: ValidationError, raw: Mapping[str, str]) -> list[str]:
    """One ``config error:`` line per invalid variable; cross-field rules give their own lines."""
    by_place = {(group, attr): (name, info) for name, (group, attr, info) in flat_fields().items()}
    lines: list[str] = []
    for err in exc.errors():
        loc = err.get("loc") or ()
        if not loc:
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            lines.extend(msg.splitlines())
            continue
        place = by_place.get((str(loc[0]), str(loc[1]) if len(loc) > 1 else ""))
        name = place[0] if place else str(loc[-1])
        env = name.upper()
        value = raw.get(env, err.get("input"))
        shown = "***" if name in SECRET_FIELDS else value
        accepts = accepted_values(place[1]) if place else str(err.get("msg"))
        if accepts == "is invalid" and err.get("type") == "value_error":  # a validator's own reason
            accepts = str(err.get("msg", "")).removeprefix("Value error, ")
        lines.append(f"config error: {env}={shown!r}: {accepts}")
    return lines


def _read_env_file(path: Path) -> dict[str, str | None]:
    """Read ``.env`` like python-dotenv, but stop with the line number of a line it cannot parse."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        body = stripped.removeprefix("export ").strip()
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*\s*=", body):
            raise ConfigError([f"config error: {path} line {number}: cannot parse {line!r} (expected KEY=VALUE)"])
    return dict(dotenv_values(path))
