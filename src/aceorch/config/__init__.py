"""Settings: read once from the environment and ``.env``, grouped by concern, then passed around as one object.

* :mod:`~aceorch.config.types` — the value types (port ranges, enumerations, lenient coercers);
* :mod:`~aceorch.config.groups` — one documented model per concern (``api``, ``runtime``, ``pool`` ...);
* :mod:`~aceorch.config.settings` — :class:`Settings`, which assembles the groups from flat variable names;
* :mod:`~aceorch.config.loading` — :func:`load_settings` and its one-line-per-variable errors;
* :mod:`~aceorch.config.example` — ``.env.example``, generated from the field descriptions
  (``python -m aceorch.config --write .env.example``).
"""

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
from aceorch.config.loading import accepted_values, load_settings
from aceorch.config.settings import SECRET_FIELDS, SETTING_GROUPS, Settings, cross_field_problems, flat_fields
from aceorch.config.types import LogFormat, LogLevel, PortRange, RuntimeKind, WaitFor, default_engine_command

__all__ = [
    "Settings", "load_settings", "PortRange", "RuntimeKind", "WaitFor", "LogFormat", "LogLevel",
    "default_engine_command", "SECRET_FIELDS", "SETTING_GROUPS", "cross_field_problems", "flat_fields",
    "accepted_values", "ApiSettings", "RuntimeSettings", "PoolSettings", "HealthSettings", "BreakerSettings",
    "StreamSettings", "VpnSettings", "DebugSettings", "ProxySettings",
]
