"""What the engine simulator knows about content: ids, swarm infohashes, content modes, start sources.

A content mode says how the simulated swarm behaves for one content id or infohash (``*`` for all):
``ok``, ``no_peers``, ``dead_with_peers``, ``failed``, ``stall:N`` (data stops N s after ``dl``) or ``cut:N``
(readers are closed N s after ``dl``). Modes are normalised here, for ``SIM_CONTENT_MODES`` and for
``POST /__sim/state`` alike.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from aceorch.sim._common import ConfigError

__all__ = [
    "CONTENT_MODE_KINDS",
    "STALL_DEFAULT_S",
    "Source",
    "derive_infohash",
    "normalise_mode",
    "parse_content_mode",
    "parse_content_modes",
    "pick_source",
]

CONTENT_MODE_KINDS = ("ok", "no_peers", "dead_with_peers", "failed", "stall", "cut")
#: The N of ``stall`` and ``cut`` when the mode names none, in seconds.
STALL_DEFAULT_S = 10.0

_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def derive_infohash(content_id: str) -> str:
    """The simulator's swarm infohash for a content id: stable per id, and never equal to the id itself."""
    return hashlib.sha1(("aceorch-sim:" + content_id.lower()).encode()).hexdigest()


def parse_content_mode(value: str) -> tuple[str, float]:
    """``"stall:15"`` -> ``("stall", 15.0)``; raises ValueError for an unknown mode."""
    kind, sep, arg = value.strip().lower().partition(":")
    if kind not in CONTENT_MODE_KINDS:
        raise ValueError(f"unknown content mode {value!r} (expected one of {', '.join(CONTENT_MODE_KINDS)})")
    if kind in ("stall", "cut"):
        if not sep:
            return kind, STALL_DEFAULT_S
        seconds = float(arg)
        if not seconds >= 0 or seconds == float("inf"):
            raise ValueError(f"bad duration in content mode {value!r}")
        return kind, seconds
    if sep:
        raise ValueError(f"content mode {kind!r} takes no argument")
    return kind, 0.0


def normalise_mode(value: str) -> str:
    """The canonical spelling of a content mode (``"STALL:15.0"`` -> ``"stall:15"``); raises ValueError."""
    kind, seconds = parse_content_mode(value)
    return f"{kind}:{seconds:g}" if kind in ("stall", "cut") else kind


def parse_content_modes(name: str, raw: str) -> dict[str, str]:
    """A JSON object of content id or infohash (or ``*``) -> mode, normalised; raises :class:`ConfigError`."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(name, f"expected a JSON object, got {raw!r} ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(name, f"expected a JSON object, got {raw!r}")
    modes: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(value, str) or not key.strip():
            raise ConfigError(name, f"entry {key!r}: expected a non-empty key and a mode string")
        try:
            modes[key.strip().lower()] = normalise_mode(value)
        except ValueError as exc:
            raise ConfigError(name, f"entry {key!r}: {exc}") from None
    return modes


@dataclass
class Source:
    """What a getstream request asked for."""

    kind: str  # "id", "infohash", "url", "magnet"
    content_id: str
    infohash: str
    valid: bool


def pick_source(query: Mapping[str, str]) -> Source | None:
    """The content a start request names: ``content_id``/``id``, else ``infohash``, else ``url``, else ``magnet``."""
    for key in ("content_id", "id"):
        if value := query.get(key, "").strip().lower():
            valid = bool(_HEX40.match(value))
            return Source("id", value, derive_infohash(value) if valid else "", valid)
    if value := query.get("infohash", "").strip().lower():
        valid = bool(_HEX40.match(value))
        return Source("infohash", value, value if valid else "", valid)
    for key in ("url", "direct_url"):
        if value := query.get(key, "").strip():
            content_id = hashlib.sha1(("url:" + value).encode()).hexdigest()
            return Source("url", content_id, derive_infohash(content_id), True)
    if value := query.get("magnet", "").strip():
        match = re.search(r"urn:btih:([0-9a-fA-F]{40})", value)
        if match:
            infohash = match.group(1).lower()
            return Source("magnet", infohash, infohash, True)
        content_id = hashlib.sha1(("magnet:" + value).encode()).hexdigest()
        return Source("magnet", content_id, derive_infohash(content_id), True)
    return None
