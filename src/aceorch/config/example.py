"""``.env.example``, generated from the settings' descriptions: grouped as :class:`~aceorch.config.Settings` is,
each variable under its description and commented out at its default, plus the variables only docker-compose reads.
"""

from __future__ import annotations

import enum
import re
import textwrap

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from aceorch.config.settings import Settings, flat_fields

__all__ = ["render_env_example"]

WIDTH = 113
_RULE = "# " + "-" * (WIDTH - 2)

_HEADER = """\
# aceorch settings. Copy to .env and edit: `cp .env.example .env`.
#
# aceorch reads .env from its working directory at start (a real environment variable wins over .env).
# Syntax: KEY=VALUE, optional `export `, quotes, `#` comments, inline comments after whitespace.
# An empty value means "unset": the default applies. A commented line shows the default.
# Settings apply once per start: after an edit, `docker-compose restart orchestrator` (or restart `aceorch serve`).
# Under docker-compose this same file also feeds compose's ${...} substitution (see the last section);
# a change to APP_PORT, DOCKER_NETWORK or those compose-only values needs `docker-compose up -d`.
# Full reference: docs/deployment.md and the configuration spec.
# Generated from the settings' descriptions by `python -m aceorch.config --write .env.example`: edit those, not this.
"""

_COMPOSE_ONLY = """\
# The user the orchestrator runs as: yours, so that debug_logs/ belongs to you. `id -u` / `id -g`.
# UID=1000
# GID=1000
# The group owning the Docker socket: `stat -c %g /var/run/docker.sock`. Its members control Docker.
# DOCKER_GID=999
# VPN mode: the engine ports published on the Gluetun container, the VPN port pool (first MAX_ACTIVE_REPLICAS
# ports of PORT_RANGE_HOST).
# VPN_ENGINE_PORTS=19000-19019
# VPN mode: host port (127.0.0.1 only) of Gluetun's control server.
# GLUETUN_CONTROL_HOST_PORT=8001
# VPN mode: your provider's settings for Gluetun (see docker-compose.gluetun.yml).
# VPN_SERVICE_PROVIDER=
# VPN_TYPE=wireguard
# WIREGUARD_PRIVATE_KEY=
# WIREGUARD_ADDRESSES=
# OPENVPN_USER=
# OPENVPN_PASSWORD=
# SERVER_COUNTRIES=
# VPN_PORT_FORWARDING=off
"""


def shown_default(field: FieldInfo) -> str:
    """A field's default as ``.env`` text; empty when it is unset or depends on the machine (a default factory)."""
    value = field.default
    if value is PydanticUndefined or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def _section(title: str) -> list[str]:
    return ["", _RULE, f"# {title}", _RULE]


#: A number and its unit stay on one line.
_UNIT = re.compile(r"(\d) (s|ms|MB|days)\b")


def _comment(text: str) -> list[str]:
    glued = _UNIT.sub("\\1\u00a0\\2", text)
    wrapped = textwrap.wrap(glued, WIDTH - 2, break_long_words=False, break_on_hyphens=False)
    return ["# " + line.replace("\u00a0", " ") for line in wrapped]


def render_env_example() -> str:
    """The whole text of ``.env.example``."""
    lines = _HEADER.splitlines()
    current = ""
    for name, (group, _, field) in flat_fields().items():
        if group != current:
            current = group
            model = Settings.model_fields[group].annotation
            assert isinstance(model, type) and issubclass(model, BaseModel)
            lines += _section(str(model.model_config.get("title") or group))
        lines += _comment(field.description or "")
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if "example" in extra:
            lines += ["# CHANGE THIS before use.", f"{name.upper()}={extra['example']}"]
        else:
            lines.append(f"# {name.upper()}={shown_default(field)}")
    lines += _section("docker-compose only (read by compose's ${...} substitution; aceorch ignores them)")
    lines += _COMPOSE_ONLY.splitlines()
    return "\n".join(lines) + "\n"
