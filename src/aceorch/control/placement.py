"""Where a new engine goes: its host and container ports, and the VPN it runs behind.

:class:`Placement` reserves every port of a start (the ports a request or its ``CONF`` asks for, else the next
free ones of the right range), picks the VPN of a start when there are several, and moves a start to the next
free host port when another program holds the one chosen. It remembers the VPN chosen for each start in flight,
by its HTTP host port, until the provisioner forgets it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Protocol

from aceorch.config import Settings
from aceorch.control.admission import GateState, ProvisionRequest, blocked_error
from aceorch.control.ports import PortAllocator, PortConflict, PortPoolExhausted
from aceorch.errors import InputRejected, PortInUse, PortUnavailable
from aceorch.models import Engine
from aceorch.runtime.base import Runtime

__all__ = ["Placement", "VpnPlacement", "VpnTarget", "conf_ports"]

logger = logging.getLogger("aceorch.control.provisioner")


def conf_ports(conf: str) -> tuple[int | None, int | None]:
    """The HTTP and HTTPS ports a ``CONF`` text names (``--http-port=``, ``--https-port=``), None where absent."""
    http = re.search(r"--http-port=(\d+)", conf)
    https = re.search(r"--https-port=(\d+)", conf)
    return (int(http.group(1)) if http else None, int(https.group(1)) if https else None)


class VpnTarget(Protocol):
    """One VPN a new engine may go behind: its Gluetun container, host ports and forwarded P2P port."""

    container: str | None
    ports: list[int]

    @property
    def forwarded_port(self) -> int | None:
        """The port its Gluetun forwards (while connected)."""


class VpnPlacement(Protocol):
    """The VPNs engines run behind (several of them), as the provisioner places a new engine."""

    @property
    def several(self) -> bool:
        """More than one VPN."""

    def pick(self, taken: frozenset[int]) -> VpnTarget | None:
        """The connected VPN with the fewest engines, or None."""

    def member(self, engine: Engine) -> VpnTarget | None:
        """The VPN an engine runs behind."""

    def owner(self, port: int) -> VpnTarget | None:
        """The VPN whose port range holds ``port``."""

    def engine_labels(self, target: VpnTarget) -> dict[str, str]:
        """The labels that name the VPN on its engine."""


class Placement:
    """Reserves a start's ports and chooses its VPN. One per provisioner."""

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: Runtime,
        ports: PortAllocator,
        vpn_pool: VpnPlacement | None,
        gate_state: Callable[..., GateState],
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.ports = ports
        self.vpn_pool = vpn_pool
        self.gate_state = gate_state
        #: The VPN chosen for each start being allocated or created, by its HTTP host port.
        self.vpn_of_port: dict[int, VpnTarget] = {}

    def allocate(self, req: ProvisionRequest, reserved: list[int]) -> dict[str, int | None]:
        """Reserve every port of the new engine. Fills ``reserved`` as it goes."""
        s = self.settings
        conf = req.env.get("CONF")
        conf_http, conf_https = conf_ports(conf) if conf is not None else (None, None)
        kind = self.runtime.name

        def claim(port: int, pool: Any) -> int:
            try:
                got = self.ports.claim(port, pool)
            except PortConflict as exc:
                raise PortInUse(f"Port conflict: {exc}") from None
            reserved.append(got)
            return got

        def take(pool: Any) -> int:
            try:
                got = self.ports.take(pool)
            except PortPoolExhausted as exc:
                gate = self.gate_state(req.source)
                err = blocked_error("max_capacity", gate)
                err.reason = "port_pool_exhausted"
                err.message = f"{err.message} ({exc})"
                raise err from None
            reserved.append(got)
            return got

        target = self.pick_vpn(conf_http or req.host_port)
        vpn_ports: list[int] = target.ports if target is not None else s.vpn_port_pool
        http_pool: Any = (vpn_ports if s.vpn_enabled
                          else s.runtime.port_range_host if kind == "process" else s.runtime.ace_http_range)
        for flag, port, pool in (("--http-port", conf_http, http_pool),
                                 ("--https-port", conf_https, s.runtime.ace_https_range)):
            if port is not None and port not in pool:
                raise InputRejected(f"CONF {flag}={port} is outside the port range aceorch gives engines")
        host_https: int | None = None
        if s.vpn_enabled:
            pool = vpn_ports
            wanted = req.host_port or conf_http
            if req.host_port and conf_http and req.host_port != conf_http:
                raise PortInUse("host_port and CONF --http-port disagree in VPN mode")
            host_http = claim(wanted, pool) if wanted else take(pool)
            container_http = host_http
            if target is not None:
                self.vpn_of_port[host_http] = target
        elif kind != "process":
            container_http = claim(conf_http, s.runtime.ace_http_range) if conf_http else take(s.runtime.ace_http_range)
            host_range = s.runtime.port_range_host
            host_http = claim(req.host_port, host_range) if req.host_port else take(host_range)
        else:
            wanted = req.host_port or conf_http
            if req.host_port and conf_http and req.host_port != conf_http:
                raise PortInUse("host_port and CONF --http-port disagree")
            host_http = claim(wanted, s.runtime.port_range_host) if wanted else take(s.runtime.port_range_host)
            container_http = host_http
        https_range = s.runtime.ace_https_range
        container_https = claim(conf_https, https_range) if conf_https else take(https_range)
        if s.runtime.ace_map_https and kind != "process" and not s.vpn_enabled:
            host_https = take(s.runtime.port_range_host)
        return {
            "host_http": host_http,
            "container_http": container_http,
            "container_https": container_https,
            "host_https": host_https,
        }

    def pick_vpn(self, wanted: int | None) -> VpnTarget | None:
        """With several VPNs, the one a new engine goes to: the owner of a port asked for, else
        the connected VPN with the fewest engines. None with one VPN (or none)."""
        pool = self.vpn_pool
        if pool is None or not pool.several:
            return None
        owner = pool.owner(wanted) if wanted else None
        if owner is not None:
            return owner
        target = pool.pick(self.ports.taken)
        if target is None:
            err = blocked_error("max_capacity", self.gate_state())
            err.reason = "port_pool_exhausted"
            err.message = f"{err.message} (every connected VPN's port range is in use)"
            raise err
        return target

    def move_host_ports(self, req: ProvisionRequest, layout: dict[str, int | None], exc: PortUnavailable) -> None:
        """Another program holds a host port we chose: keep it marked as taken, and take the next free one.

        A port the caller asked for (``host_port`` or CONF) is not moved: that is a 409 ``port_conflict``.
        The caller forgets what it keyed by the old host port.
        """
        s = self.settings
        if req.host_port or (req.env.get("CONF") and conf_ports(req.env["CONF"])[0]):
            raise PortInUse(f"Port conflict: {exc}")
        logger.warning("a host port is held outside aceorch (%s); trying the next free one", exc)
        target = self.vpn_of_port.pop(int(layout["host_http"] or 0), None)
        pool: Any = (target.ports if target is not None else s.vpn_port_pool) if s.vpn_enabled \
            else s.runtime.port_range_host
        try:
            new = self.ports.take(pool)
        except PortPoolExhausted:
            err = blocked_error("max_capacity", self.gate_state(req.source))
            err.reason = "port_pool_exhausted"
            raise err from None
        layout["host_http"] = new
        if target is not None:
            self.vpn_of_port[new] = target
        if s.vpn_enabled or self.runtime.name == "process":
            layout["container_http"] = new
