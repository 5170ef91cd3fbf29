"""The settings a session ran with, read from its ``session_start`` record, and the thresholds they give.

The analysis judges a session by the thresholds it ran with (a slow start is one over
``STARTUP_TIMEOUT_S`` × ``DEBUG_SLOW_PROVISIONING_RATIO``), falling back to the service's defaults when the
record is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aceorch.analysis.reader import Reader
from aceorch.analysis.sessions import Session

__all__ = [
    "DEFAULT_STARTUP_TIMEOUT_S",
    "DEFAULT_SLOW_RATIO",
    "DEFAULT_UNHEALTHY_RATIO",
    "session_config",
    "config_value",
    "slow_threshold_ms",
    "unhealthy_ratio",
]

DEFAULT_STARTUP_TIMEOUT_S = 25.0
DEFAULT_SLOW_RATIO = 0.7
DEFAULT_UNHEALTHY_RATIO = 0.3


def session_config(reader: Reader, sessions: Sequence[Session]) -> dict[str, Any]:
    """The effective config of the first ``session_start`` record found (empty if none)."""
    for session in sessions:
        path = session.path("session")
        if path is None:
            continue
        for record in reader.records(path, needle=b"session_start"):
            if record.get("operation") == "session_start" or record.get("event_type") == "session_start":
                config = record.get("config")
                if isinstance(config, dict):
                    return config
                return {}
    return {}


def config_value(config: dict[str, Any], name: str) -> Any:
    """A setting from a ``session_start`` config, by env-var name or field name (case-insensitive)."""
    wanted = name.lower()
    for key, value in config.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value
    for value in config.values():
        if isinstance(value, dict):
            found = config_value(value, name)
            if found is not None:
                return found
    return None


def _config_float(config: dict[str, Any], name: str, default: float) -> float:
    value = config_value(config, name)
    try:
        return float(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


def slow_threshold_ms(config: dict[str, Any]) -> float:
    """``STARTUP_TIMEOUT_S`` × ``DEBUG_SLOW_PROVISIONING_RATIO`` in ms (17500 with the defaults)."""
    timeout = _config_float(config, "STARTUP_TIMEOUT_S", DEFAULT_STARTUP_TIMEOUT_S)
    ratio = _config_float(config, "DEBUG_SLOW_PROVISIONING_RATIO", DEFAULT_SLOW_RATIO)
    return round(timeout * ratio * 1000.0, 2)


def unhealthy_ratio(config: dict[str, Any]) -> float:
    """``DEBUG_UNHEALTHY_RATIO``: the share of unhealthy engines that counts as a stress situation."""
    return _config_float(config, "DEBUG_UNHEALTHY_RATIO", DEFAULT_UNHEALTHY_RATIO)
