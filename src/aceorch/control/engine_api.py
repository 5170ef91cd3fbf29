"""How aceorch reaches an engine: its container name, the address proxies are given, and its readiness probe."""

from __future__ import annotations

import os
import re

import httpx

from aceorch.config import Settings

__all__ = ["ENGINE_NAME", "advertised_address", "engine_ready", "running_in_container"]

#: Engine containers are named ``acestream-<n>``.
ENGINE_NAME = re.compile(r"^acestream-(\d+)$")


def running_in_container() -> bool:
    """True when aceorch itself runs in a container next to its engines (set by the project's image).

    ``/.dockerenv`` is not used: a sandbox that runs its own Docker engine is a container too, yet the engines'
    published ports are on its own loopback.
    """
    return os.environ.get("ACEORCH_IN_CONTAINER") == "1"


def advertised_address(
    settings: Settings,
    *,
    container_name: str,
    host_port: int,
    container_port: int,
    in_container: bool,
    runtime_kind: str = "docker",
    node_address: str | None = None,
    vpn: str | None = None,
) -> tuple[str, int]:
    """(host, port) that proxies see in /engines, following ENGINE_ADVERTISE_HOST.

    An engine on a node of a multi-node runtime (``node_address``, a Swarm node) is at that node's address and its
    published port, whatever ENGINE_ADVERTISE_HOST says: no single host name reaches engines on several machines.

    ``auto``: the loopback and the published port when aceorch runs on the host (or with the process runtime);
    inside a container, the engine's network peer (the Gluetun container in VPN mode: ``vpn``, the one it runs
    behind, with several) and the container port.
    """
    if node_address:
        return node_address, host_port
    choice = settings.runtime.engine_advertise_host
    if choice != "auto":
        return choice, host_port
    if not in_container or runtime_kind == "process":
        return "127.0.0.1", host_port
    gluetun = vpn or settings.vpn.gluetun_container_name or next(iter(settings.vpn.names), None)
    if settings.vpn_enabled and gluetun:
        return gluetun, container_port
    return container_name, container_port


async def engine_ready(client: httpx.AsyncClient, host: str, port: int, timeout: float = 2.0) -> bool:
    """True when ``get_status`` answers 200 JSON (with ``result.playlist_loaded`` true when present)."""
    url = f"http://{host}:{port}/server/api"
    try:
        resp = await client.get(url, params={"api_version": "3", "method": "get_status"}, timeout=timeout)
    except httpx.HTTPError:
        return False
    if resp.status_code != 200:
        return False
    try:
        body = resp.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    result = body.get("result")
    if isinstance(result, dict) and "playlist_loaded" in result:
        return bool(result["playlist_loaded"])
    return True
