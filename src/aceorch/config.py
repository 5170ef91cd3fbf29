"""Settings, read once from the environment and ``.env`` (config.md), then passed around as one object.

Precedence: the real environment, then ``.env`` in the working directory, then the defaults. An empty value means
unset. Every invalid variable is reported on its own line (``config error: NAME='value': accepted values``);
:func:`load_settings` collects them all into one :class:`~aceorch.errors.ConfigError`.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import shlex
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from dotenv import dotenv_values
from pydantic import BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from aceorch.errors import ConfigError

__all__ = ["Settings", "PortRange", "load_settings", "default_engine_command", "SECRET_FIELDS"]

logger = logging.getLogger(__name__)

SECRET_FIELDS = frozenset({"api_key", "gluetun_api_key"})


@dataclass(frozen=True)
class PortRange:
    """An inclusive port range ``A-B``, 1 ≤ A ≤ B ≤ 65535."""

    start: int
    end: int

    @classmethod
    def parse(cls, value: object) -> PortRange:
        if isinstance(value, PortRange):
            return value
        m = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", str(value))
        if not m:
            raise ValueError("must be a range A-B with 1 ≤ A ≤ B ≤ 65535")
        start, end = int(m.group(1)), int(m.group(2))
        if not 1 <= start <= end <= 65535:
            raise ValueError("must be a range A-B with 1 ≤ A ≤ B ≤ 65535")
        return cls(start, end)

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.start <= port <= self.end

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end + 1))

    def __len__(self) -> int:
        return self.end - self.start + 1

    def overlaps(self, other: PortRange) -> bool:
        return self.start <= other.end and other.start <= self.end

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


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


_INT = BeforeValidator(_int)
_FLOAT = BeforeValidator(_float)

Bool = Annotated[bool, BeforeValidator(_bool)]
Range = Annotated[PortRange, NoDecode, BeforeValidator(PortRange.parse)]
Str = Annotated[str, BeforeValidator(_strip)]


class RuntimeKind(enum.StrEnum):
    AUTO = "auto"
    DOCKER = "docker"
    PROCESS = "process"


class WaitFor(enum.StrEnum):
    READY = "ready"
    RUNNING = "running"


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class LogLevel(enum.StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


def default_engine_command() -> str:
    return f"{shlex.quote(sys.executable)} -m aceorch.sim engine"


#: What each variable accepts, for the one-line error messages.
ACCEPTS: dict[str, str] = {}


def _describe(name: str, info: Any) -> str:
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


class Settings(BaseSettings):
    """Every setting of config.md. Field names are the variable names in lower case."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # Service, API and logging
    app_host: Str = "0.0.0.0"
    app_port: Annotated[int, _INT, Field(ge=1, le=65535)] = 8000
    api_key: SecretStr | None = None
    log_level: Annotated[LogLevel, BeforeValidator(_upper)] = LogLevel.INFO
    log_format: Annotated[LogFormat, BeforeValidator(_lower)] = LogFormat.TEXT
    db_url: Str = "sqlite:///./orchestrator.db"

    # Runtime and engines
    runtime: Annotated[RuntimeKind, BeforeValidator(_lower)] = RuntimeKind.AUTO
    engine_command: Str = Field(default_factory=default_engine_command)
    docker_network: Str | None = None
    target_image: Str = "acestream/engine:latest"
    container_label: Str = "ondemand.app=myservice"
    engine_advertise_host: Str = "auto"
    provision_wait_for: Annotated[WaitFor, BeforeValidator(_lower)] = WaitFor.READY
    startup_timeout_s: Annotated[int, _INT, Field(ge=1, le=600)] = 25
    port_range_host: Range = PortRange(19000, 19999)
    ace_http_range: Range = PortRange(40000, 44999)
    ace_https_range: Range = PortRange(45000, 49999)
    ace_map_https: Bool = False

    # Pool, autoscaling and provisioning
    min_replicas: Annotated[int, _INT, Field(ge=0, le=1000)] = 1
    min_free_replicas: Annotated[int, _INT, Field(ge=0, le=1000)] = 1
    max_replicas: Annotated[int, _INT, Field(ge=1, le=1000)] = 20
    max_active_replicas: Annotated[int, _INT, Field(ge=1, le=1000)] = 20
    auto_delete: Bool = False
    engine_grace_period_s: Annotated[int, _INT, Field(ge=0, le=86400)] = 30
    idle_ttl_s: Annotated[int, _INT, Field(ge=0, le=604800)] = 600
    autoscale_interval_s: Annotated[int, _INT, Field(ge=1, le=3600)] = 30
    monitor_interval_s: Annotated[int, _INT, Field(ge=1, le=3600)] = 10
    max_concurrent_provisions: Annotated[int, _INT, Field(ge=1, le=100)] = 5
    min_provision_interval_s: Annotated[float, _FLOAT, Field(ge=0, le=60)] = 0.5

    # Health and circuit breakers
    health_check_interval_s: Annotated[int, _INT, Field(ge=1, le=3600)] = 20
    health_failure_threshold: Annotated[int, _INT, Field(ge=1, le=100)] = 3
    health_unhealthy_grace_period_s: Annotated[int, _INT, Field(ge=0, le=86400)] = 60
    health_replacement_cooldown_s: Annotated[int, _INT, Field(ge=0, le=86400)] = 60
    circuit_breaker_failure_threshold: Annotated[int, _INT, Field(ge=1, le=1000)] = 5
    circuit_breaker_recovery_timeout_s: Annotated[int, _INT, Field(ge=1, le=86400)] = 300
    circuit_breaker_replacement_threshold: Annotated[int, _INT, Field(ge=1, le=1000)] = 3
    circuit_breaker_replacement_timeout_s: Annotated[int, _INT, Field(ge=1, le=86400)] = 180

    # Streams and stats
    collect_interval_s: Annotated[int, _INT, Field(ge=1, le=3600)] = 5
    stats_history_max: Annotated[int, _INT, Field(ge=1, le=100000)] = 720
    stream_retention_s: Annotated[int, _INT, Field(ge=60, le=31536000)] = 86400

    # VPN (Gluetun)
    gluetun_container_name: Str | None = None
    gluetun_api_port: Annotated[int, _INT, Field(ge=1, le=65535)] = 8000
    gluetun_api_url: Str | None = None
    gluetun_api_key: SecretStr | None = None
    gluetun_health_check_interval_s: Annotated[int, _INT, Field(ge=1, le=3600)] = 5
    gluetun_port_cache_ttl_s: Annotated[int, _INT, Field(ge=1, le=86400)] = 60
    gluetun_startup_wait_s: Annotated[int, _INT, Field(ge=0, le=3600)] = 60
    vpn_restart_engines_on_reconnect: Bool = True
    vpn_recovery_stabilize_s: Annotated[int, _INT, Field(ge=0, le=3600)] = 30

    # Debug mode
    debug_mode: Bool = False
    debug_log_dir: Str = "./debug_logs"
    debug_log_retention_days: Annotated[int, _INT, Field(ge=0, le=3650)] = 7
    debug_log_max_mb: Annotated[int, _INT, Field(ge=1, le=1048576)] = 512
    debug_flush_interval_ms: Annotated[int, _INT, Field(ge=10, le=1000)] = 200
    debug_slow_provisioning_ratio: Annotated[float, _FLOAT, Field(gt=0, le=1)] = 0.7
    debug_unhealthy_ratio: Annotated[float, _FLOAT, Field(ge=0, lt=1)] = 0.3

    @model_validator(mode="after")
    def _cross_field(self) -> Settings:
        problems = cross_field_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # Derived values -------------------------------------------------------------------------------------
    @property
    def vpn_enabled(self) -> bool:
        return bool(self.gluetun_container_name)

    @property
    def label_pair(self) -> tuple[str, str]:
        key, _, value = self.container_label.partition("=")
        return key, value

    @property
    def vpn_port_pool(self) -> list[int]:
        return list(self.port_range_host)[: self.max_active_replicas]

    def api_key_value(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None

    def masked(self) -> dict[str, Any]:
        """Every setting as JSON-friendly values, secrets shown as ``***`` (or null when unset)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in SECRET_FIELDS:
                out[name.upper()] = "***" if value else None
            elif isinstance(value, PortRange):
                out[name.upper()] = str(value)
            elif isinstance(value, enum.Enum):
                out[name.upper()] = value.value
            else:
                out[name.upper()] = value
        return out


def cross_field_problems(s: Settings) -> list[str]:
    problems: list[str] = []
    if s.min_replicas > s.max_replicas:
        problems.append(
            f"config error: MIN_REPLICAS={s.min_replicas}: must be ≤ MAX_REPLICAS ({s.max_replicas})"
        )
    if s.min_free_replicas > s.max_replicas:
        problems.append(
            f"config error: MIN_FREE_REPLICAS={s.min_free_replicas}: must be ≤ MAX_REPLICAS ({s.max_replicas})"
        )
    if "=" not in s.container_label or not s.label_pair[0].strip():
        problems.append(
            f"config error: CONTAINER_LABEL='{s.container_label}': must be key=value with a non-empty key"
        )
    ranges = {
        "PORT_RANGE_HOST": s.port_range_host,
        "ACE_HTTP_RANGE": s.ace_http_range,
        "ACE_HTTPS_RANGE": s.ace_https_range,
    }
    names = list(ranges)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if ranges[a].overlaps(ranges[b]):
                problems.append(f"config error: {a}={ranges[a]} and {b}={ranges[b]}: ranges must not overlap")
    for name, rng in ranges.items():
        if s.app_port in rng:
            problems.append(f"config error: APP_PORT={s.app_port}: must lie outside {name} ({rng})")
    if s.gluetun_api_url and not re.match(r"^https?://[^/\s]+", s.gluetun_api_url):
        problems.append(f"config error: GLUETUN_API_URL='{s.gluetun_api_url}': must be an absolute http(s) URL")
    if not re.match(r"^(sqlite|postgresql(\+\w+)?)://", s.db_url):
        problems.append(
            f"config error: DB_URL='{s.db_url}': must be an SQLAlchemy URL with scheme sqlite or postgresql"
        )
    if s.vpn_enabled:
        if s.max_active_replicas > len(s.port_range_host):
            problems.append(
                f"config error: MAX_ACTIVE_REPLICAS={s.max_active_replicas}: must be ≤ the size of "
                f"PORT_RANGE_HOST ({len(s.port_range_host)}) in VPN mode"
            )
        if s.min_replicas > s.max_active_replicas:
            problems.append(
                f"config error: MIN_REPLICAS={s.min_replicas}: must be ≤ MAX_ACTIVE_REPLICAS "
                f"({s.max_active_replicas}) in VPN mode"
            )
        if s.gluetun_api_port in s.vpn_port_pool:
            problems.append(
                f"config error: GLUETUN_API_PORT={s.gluetun_api_port}: must not be a VPN pool port in VPN mode"
            )
        if s.runtime is RuntimeKind.PROCESS:
            problems.append(
                "config error: RUNTIME=process with GLUETUN_CONTAINER_NAME set: VPN mode needs RUNTIME=docker"
            )
    return problems


def _format_validation(exc: ValidationError, raw: Mapping[str, str]) -> list[str]:
    lines: list[str] = []
    fields = Settings.model_fields
    for err in exc.errors():
        loc = err.get("loc") or ()
        if not loc:
            msg = str(err.get("msg", ""))
            msg = msg.removeprefix("Value error, ")
            lines.extend(msg.splitlines())
            continue
        name = str(loc[0])
        env = name.upper()
        value = raw.get(env, err.get("input"))
        shown = "***" if name in SECRET_FIELDS else value
        info = fields.get(name)
        accepts = _describe(name, info) if info is not None else str(err.get("msg"))
        lines.append(f"config error: {env}={shown!r}: {accepts}")
    return lines


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build the settings once, for ``serve`` or ``create_app``. Raises ConfigError listing every problem."""
    raw: dict[str, str] = {k.upper(): v for k, v in os.environ.items()}
    file_values: dict[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        file_values = _read_env_file(Path(env_file))
        for key, value in file_values.items():
            raw.setdefault(key.upper(), value or "")
    known = {name.upper() for name in Settings.model_fields}
    for key in file_values:
        upper = key.upper()
        if upper in known:
            continue
        close = [k for k in known if _edit_distance(upper, k) <= 2]
        if close:
            logger.warning("unknown setting %s in %s; did you mean %s?", key, env_file, close[0])
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, raw)) from None


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
