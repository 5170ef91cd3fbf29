"""The :class:`Settings` object: the groups assembled from one flat set of variables, and the cross-field rules.

Precedence: keyword arguments, then the real environment, then ``.env`` (``_env_file``), then the defaults. An
empty value means unset. Variables keep flat names (``MIN_REPLICAS``); pydantic-settings reads them through a
flat view of every group's fields, and each value is then nested under its group (``settings.pool.min_replicas``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, Field, create_model, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from aceorch.config.groups import (
    ApiSettings,
    BreakerSettings,
    DebugSettings,
    HealthSettings,
    PoolSettings,
    ProxySettings,
    RuntimeSettings,
    StreamSettings,
    VpnSettings,
)
from aceorch.config.types import PortRange, RuntimeKind

__all__ = ["Settings", "SECRET_FIELDS", "SETTING_GROUPS", "cross_field_problems", "flat_fields", "nest"]

#: The flat names whose values are secrets: never logged, shown as ``***``.
SECRET_FIELDS = frozenset({"api_key", "gluetun_api_key", "proxy_api_key"})


class Settings(BaseSettings):
    """Every setting, grouped by concern; built once (see :func:`~aceorch.config.load_settings`) and passed in."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    api: ApiSettings = Field(default_factory=ApiSettings, description=ApiSettings.__doc__)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings, description=RuntimeSettings.__doc__)
    pool: PoolSettings = Field(default_factory=PoolSettings, description=PoolSettings.__doc__)
    health: HealthSettings = Field(default_factory=HealthSettings, description=HealthSettings.__doc__)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings, description=BreakerSettings.__doc__)
    streams: StreamSettings = Field(default_factory=StreamSettings, description=StreamSettings.__doc__)
    vpn: VpnSettings = Field(default_factory=VpnSettings, description=VpnSettings.__doc__)
    debug: DebugSettings = Field(default_factory=DebugSettings, description=DebugSettings.__doc__)
    proxy: ProxySettings = Field(default_factory=ProxySettings, description=ProxySettings.__doc__)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read the flat variables from the environment and ``.env``, and nest every source's values by group."""
        flat = _flat_view()
        env = EnvSettingsSource(flat)
        env_file = dotenv_settings.env_file if isinstance(dotenv_settings, DotEnvSettingsSource) else None
        dotenv = DotEnvSettingsSource(flat, env_file=env_file)
        return tuple(_Nested(settings_cls, source) for source in (init_settings, env, dotenv))

    @model_validator(mode="after")
    def _cross_field(self) -> Settings:
        problems = cross_field_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # Names ------------------------------------------------------------------------------------------------------
    @classmethod
    def env_names(cls) -> tuple[str, ...]:
        """Every variable aceorch reads, in upper case and in declaration order (``APP_HOST`` ... )."""
        return tuple(name.upper() for name in flat_fields())

    def value_of(self, name: str) -> Any:
        """The value of one setting by its flat or variable name (``"MIN_REPLICAS"`` or ``"min_replicas"``)."""
        group, attr, _ = flat_fields()[name.lower()]
        return getattr(getattr(self, group), attr)

    # Derived values ---------------------------------------------------------------------------------------------
    @property
    def vpn_enabled(self) -> bool:
        """VPN mode is on when ``GLUETUN_CONTAINER_NAME`` is set."""
        return self.vpn.enabled

    @property
    def label_pair(self) -> tuple[str, str]:
        """``CONTAINER_LABEL`` split at its first ``=``."""
        return self.runtime.label_pair

    @property
    def vpn_port_pool(self) -> list[int]:
        """The VPN port pool: the first ``MAX_ACTIVE_REPLICAS`` ports of ``PORT_RANGE_HOST``."""
        return list(self.runtime.port_range_host)[: self.pool.max_active_replicas]

    def api_key_value(self) -> str | None:
        """The API key in clear, or None when the API is open."""
        return self.api.api_key.get_secret_value() if self.api.api_key else None

    def masked(self) -> dict[str, Any]:
        """Every setting by variable name as JSON-friendly values, secrets shown as ``***`` (or null when unset)."""
        out: dict[str, Any] = {}
        for name in flat_fields():
            value = self.value_of(name)
            if name in SECRET_FIELDS:
                out[name.upper()] = "***" if value else None
            elif isinstance(value, PortRange):
                out[name.upper()] = str(value)
            elif isinstance(value, enum.Enum):
                out[name.upper()] = value.value
            else:
                out[name.upper()] = value
        return out


class _FlatBase(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", case_sensitive=False)


def flat_fields() -> Mapping[str, tuple[str, str, FieldInfo]]:
    """Every setting: flat name -> (group, attribute, field), in declaration order."""
    return _FLAT


def _flat_view() -> type[BaseSettings]:
    """A settings class with one text field per variable: what the env and ``.env`` sources read."""
    return _FLAT_VIEW


def nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flat names to ``{group: {attribute: value}}``; whole groups (mapping or model) pass through; others drop."""
    flat = flat_fields()
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = key.lower()
        if name in Settings.model_fields and isinstance(value, Mapping | BaseModel):
            given = dict(value) if isinstance(value, Mapping) else value.model_dump()
            out[name] = {**given, **out.get(name, {})}
        elif name in flat:
            group, attr, _ = flat[name]
            out.setdefault(group, {})[attr] = value
    return out


class _Nested(PydanticBaseSettingsSource):
    """Another source's values, nested by group."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` reads the inner source whole."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return nest(self.inner())

    def __repr__(self) -> str:
        return f"_Nested({self.inner!r})"


def cross_field_problems(s: Settings) -> list[str]:
    """The rules that tie settings together, one ``config error:`` line per broken rule."""
    pool, rt, vpn = s.pool, s.runtime, s.vpn
    problems: list[str] = []
    if pool.min_replicas > pool.max_replicas:
        problems.append(
            f"config error: MIN_REPLICAS={pool.min_replicas}: must be ≤ MAX_REPLICAS ({pool.max_replicas})"
        )
    if pool.min_free_replicas > pool.max_replicas:
        problems.append(
            f"config error: MIN_FREE_REPLICAS={pool.min_free_replicas}: must be ≤ MAX_REPLICAS ({pool.max_replicas})"
        )
    if "=" not in rt.container_label or not rt.label_pair[0].strip():
        problems.append(
            f"config error: CONTAINER_LABEL='{rt.container_label}': must be key=value with a non-empty key"
        )
    ranges = {
        "PORT_RANGE_HOST": rt.port_range_host,
        "ACE_HTTP_RANGE": rt.ace_http_range,
        "ACE_HTTPS_RANGE": rt.ace_https_range,
    }
    names = list(ranges)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if ranges[a].overlaps(ranges[b]):
                problems.append(f"config error: {a}={ranges[a]} and {b}={ranges[b]}: ranges must not overlap")
    for name, rng in ranges.items():
        if s.api.app_port in rng:
            problems.append(f"config error: APP_PORT={s.api.app_port}: must lie outside {name} ({rng})")
    if vpn.gluetun_api_url and not re.match(r"^https?://[^/\s]+", vpn.gluetun_api_url):
        problems.append(f"config error: GLUETUN_API_URL='{vpn.gluetun_api_url}': must be an absolute http(s) URL")
    if not re.match(r"^(sqlite|postgresql(\+\w+)?)://", s.api.db_url):
        problems.append(
            f"config error: DB_URL='{s.api.db_url}': must be an SQLAlchemy URL with scheme sqlite or postgresql"
        )
    if vpn.enabled:
        if pool.max_active_replicas > len(rt.port_range_host):
            problems.append(
                f"config error: MAX_ACTIVE_REPLICAS={pool.max_active_replicas}: must be ≤ the size of "
                f"PORT_RANGE_HOST ({len(rt.port_range_host)}) in VPN mode"
            )
        if pool.min_replicas > pool.max_active_replicas:
            problems.append(
                f"config error: MIN_REPLICAS={pool.min_replicas}: must be ≤ MAX_ACTIVE_REPLICAS "
                f"({pool.max_active_replicas}) in VPN mode"
            )
        if vpn.gluetun_api_port in s.vpn_port_pool:
            problems.append(
                f"config error: GLUETUN_API_PORT={vpn.gluetun_api_port}: must not be a VPN pool port in VPN mode"
            )
        if rt.kind is RuntimeKind.PROCESS:
            problems.append(
                "config error: RUNTIME=process with GLUETUN_CONTAINER_NAME set: VPN mode needs RUNTIME=docker"
            )
    return problems


def _collect_fields() -> dict[str, tuple[str, str, FieldInfo]]:
    found: dict[str, tuple[str, str, FieldInfo]] = {}
    for group, info in Settings.model_fields.items():
        model = info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for attr, field in model.model_fields.items():
            found[field.alias or attr] = (group, attr, field)
    return found


_FLAT = _collect_fields()
_FLAT_VIEW: type[BaseSettings] = create_model(
    "FlatVariables", __base__=_FlatBase, **{name: (str | None, None) for name in _FLAT}  # type: ignore[call-overload]
)
#: The group of every flat setting name (``"min_replicas" -> "pool"``): what the grouped form of a name is.
SETTING_GROUPS: Mapping[str, str] = MappingProxyType({name: group for name, (group, _, _) in _FLAT.items()})
