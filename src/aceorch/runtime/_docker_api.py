"""What the two backends over the Docker Engine API (``docker`` and ``swarm``) read and build alike.

The API version to ask for, the aiodocker client (aimed at the default socket when no Docker host is known yet),
label filters, the API's RFC 3339 times, and the error texts that mean a taken port or a missing image. Nothing
here does I/O, and it imports no backend: each backend imports it, never the other backend.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

import aiodocker
import aiohttp

__all__ = [
    "DEFAULT_SOCKET", "IMAGE_ERROR", "PORT_ERROR", "api_version", "label_filters", "make_client", "parse_time",
]

#: Where the client connects without DOCKER_HOST.
DEFAULT_SOCKET = "unix:///var/run/docker.sock"

#: An error text that means a host port is taken (or cannot be bound).
PORT_ERROR = re.compile(r"port is already allocated|address already in use|bind for|cannot assign requested", re.I)
#: An error text that means the image is absent and cannot be pulled.
IMAGE_ERROR = re.compile(r"no such image|pull access denied|manifest unknown|repository does not exist", re.I)
_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def api_version(explicit: str | None) -> str:
    """The API version to ask for: ``explicit``, else ``DOCKER_API_VERSION``, else ``auto`` (negotiated), with the
    ``v`` the API's paths need (``1.41`` is ``v1.41``)."""
    version = explicit or os.environ.get("DOCKER_API_VERSION") or "auto"
    return version if version == "auto" or version.startswith("v") else "v" + version


def make_client(url: str | None, version: str, timeout: aiohttp.ClientTimeout) -> aiodocker.Docker:
    """An aiodocker client of ``url`` (else DOCKER_HOST); without either, of the default socket, which may appear
    later. Building it connects nowhere."""
    try:
        return aiodocker.Docker(url=url, api_version=version, timeout=timeout)
    except ValueError:
        if url is not None:
            raise
        return aiodocker.Docker(url=DEFAULT_SOCKET, api_version=version, timeout=timeout)


def label_filters(labels: dict[str, str] | None) -> dict[str, list[str]]:
    """The API's ``filters`` for objects carrying every one of ``labels`` (``{}``: no filter)."""
    return {"label": [f"{k}={v}" for k, v in labels.items()]} if labels else {}


def parse_time(value: str | None) -> datetime | None:
    """The API's RFC 3339 times (nanoseconds, ``Z``) as aware UTC datetimes; the zero time is ``None``."""
    if not value or value.startswith("0001-01-01"):
        return None
    m = _TIME_RE.match(value.strip())
    if not m:
        return None
    base, frac, zone = m.groups()
    micro = (frac or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{base}.{micro}{zone}").astimezone(UTC)
