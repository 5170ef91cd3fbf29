"""The value types settings are made of: port ranges, the enumerations, and the lenient string coercers.

Environment values arrive as text. The coercers here accept the spellings an operator types (``WARN``, ``yes``,
`` 30 ``) and reject the ones pydantic's lax mode would accept silently (``5.0`` for an integer, ``1.5`` for a
port).
"""

from __future__ import annotations

import enum
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator
from pydantic_settings import NoDecode

__all__ = [
    "PortRange", "RuntimeKind", "WaitFor", "LogFormat", "LogLevel", "default_engine_command",
    "Bool", "Range", "Str", "INT", "FLOAT", "lower", "upper", "EngineEnv", "EngineVolumes", "ENGINE_MANAGED_ENV",
    "parse_engine_env", "parse_engine_volumes",
]

_RANGE_RULE = "must be a range A-B with 1 ≤ A ≤ B ≤ 65535"


@dataclass(frozen=True)
class PortRange:
    """An inclusive port range ``A-B``, 1 ≤ A ≤ B ≤ 65535."""

    start: int
    end: int

    @classmethod
    def parse(cls, value: object) -> PortRange:
        """Read ``A-B`` (spaces allowed around the numbers and the dash); a PortRange passes through."""
        if isinstance(value, PortRange):
            return value
        m = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", str(value))
        if not m:
            raise ValueError(_RANGE_RULE)
        start, end = int(m.group(1)), int(m.group(2))
        if not 1 <= start <= end <= 65535:
            raise ValueError(_RANGE_RULE)
        return cls(start, end)

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.start <= port <= self.end

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end + 1))

    def __len__(self) -> int:
        return self.end - self.start + 1

    def overlaps(self, other: PortRange) -> bool:
        """Whether the two ranges share at least one port."""
        return self.start <= other.end and other.start <= self.end

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


class RuntimeKind(enum.StrEnum):
    """Where engines run (``RUNTIME``)."""

    AUTO = "auto"
    DOCKER = "docker"
    SWARM = "swarm"
    PROCESS = "process"



class WaitFor(enum.StrEnum):
    """When a provision call answers (``PROVISION_WAIT_FOR``)."""

    READY = "ready"
    RUNNING = "running"


class LogFormat(enum.StrEnum):
    """The log line format on stdout (``LOG_FORMAT``)."""

    TEXT = "text"
    JSON = "json"


class LogLevel(enum.StrEnum):
    """The root log level (``LOG_LEVEL``)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


def default_engine_command() -> str:
    """The process runtime's default engine: the bundled simulator, run by the Python running aceorch."""
    return f"{shlex.quote(sys.executable)} -m aceorch.sim engine"


def _int(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError("not an integer")
        return int(text)
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("not an integer")
    return value


def _float(value: object) -> object:
    if isinstance(value, str):
        return float(value.strip())
    return value


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _bool(value: object) -> object:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("not a boolean")
    return value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _upper(value: object) -> object:
    if isinstance(value, str):
        text = value.strip().upper()
        return "WARNING" if text == "WARN" else text
    return value


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


#: Strict integers: ``30`` and `` 30 `` but not ``30.0`` or ``true``.
INT = BeforeValidator(_int)
#: Numbers, surrounding spaces allowed.
FLOAT = BeforeValidator(_float)
#: Case-insensitive enumeration values.
lower = BeforeValidator(_lower)
#: Upper-case enumeration values, ``WARN`` read as ``WARNING``.
upper = BeforeValidator(_upper)

#: Booleans spelt true/false, 1/0, yes/no or on/off, in any case.
Bool = Annotated[bool, BeforeValidator(_bool)]
#: A port range ``A-B``, read as text (never JSON-decoded by the settings sources).
Range = Annotated[PortRange, NoDecode, BeforeValidator(PortRange.parse)]
#: Text with surrounding spaces removed.
Str = Annotated[str, BeforeValidator(_strip)]


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Engine variables aceorch sets for each engine itself (ports, binding, buffering): ENGINE_ENV may not set them.
ENGINE_MANAGED_ENV = frozenset({"CONF", "HTTP_PORT", "HTTPS_PORT", "P2P_PORT", "BIND_ALL", "INTERNAL_BUFFERING",
                                "CACHE_LIMIT"})


def parse_engine_volumes(text: str) -> list[tuple[str, str, bool]]:
    """``ENGINE_VOLUMES`` as (host path, container path, read-only) triples; ValueError names the bad entry."""
    out: list[tuple[str, str, bool]] = []
    targets: set[str] = set()
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        parts = entry.split(":")
        mode = "rw"
        if len(parts) == 3:
            mode = parts[2].strip().lower()
        if len(parts) not in (2, 3) or mode not in ("ro", "rw"):
            raise ValueError(f"{entry!r}: expected host_path:container_path or host_path:container_path:ro (or :rw)")
        source, target = parts[0].strip(), parts[1].strip()
        if not source.startswith("/") or not target.startswith("/"):
            raise ValueError(f"{entry!r}: both paths must be absolute (start with /)")
        if target in targets:
            raise ValueError(f"{entry!r}: {target} is mounted twice")
        targets.add(target)
        out.append((source, target, mode == "ro"))
    return out


def parse_engine_env(text: str) -> dict[str, str]:
    """``ENGINE_ENV`` as a dict; ValueError names the bad entry."""
    out: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, eq, value = entry.partition("=")
        name = name.strip()
        if not eq or not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{entry!r}: expected NAME=value (a name of letters, digits and _)")
        if name in ENGINE_MANAGED_ENV:
            raise ValueError(f"{entry!r}: aceorch sets {name} for each engine itself")
        out[name] = value
    return out


def _engine_volumes(value: str) -> str:
    parse_engine_volumes(value)
    return value


def _engine_env(value: str) -> str:
    parse_engine_env(value)
    return value


#: ``ENGINE_VOLUMES`` text, checked entry by entry.
EngineVolumes = Annotated[str, BeforeValidator(_strip), AfterValidator(_engine_volumes)]
#: ``ENGINE_ENV`` text, checked entry by entry.
EngineEnv = Annotated[str, BeforeValidator(_strip), AfterValidator(_engine_env)]
