"""The ``vpn`` group: engines behind one or several Gluetun containers, and how their tunnels are watched."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, SecretStr, model_validator

from aceorch.config.groups.base import Group
from aceorch.config.types import INT, Bool, PortRange, Str

__all__ = ["VpnSettings"]


class VpnSettings(Group):
    """VPN mode: engines behind a Gluetun container, and how aceorch watches its tunnel."""

    model_config = ConfigDict(title="VPN (Gluetun)")

    gluetun_container_name: Str | None = Field(
        None,
        description="Setting it turns VPN mode on (engines join this container's network namespace; needs the "
        "Docker runtime); default unset. docker-compose.gluetun.yml sets it to gluetun for the orchestrator.",
    )
    gluetun_api_port: Annotated[int, INT] = Field(
        8000, ge=1, le=65535,
        description="Port of Gluetun's control server, 1-65535, default 8000, not a VPN pool port.",
    )
    gluetun_api_url: Str | None = Field(
        None,
        description="Base URL of the control server (absolute http(s) URL), default unset: "
        "http://<GLUETUN_CONTAINER_NAME>:<GLUETUN_API_PORT> if that name resolves, else the container's IP from "
        "Docker.",
    )
    gluetun_api_key: SecretStr | None = Field(
        None,
        description="Sent as X-API-Key to the control server (Gluetun >= v3.39.1), default unset. Never logged.",
    )
    gluetun_health_check_interval_s: Annotated[int, INT] = Field(
        5, ge=1, le=3600, description="VPN monitor period, 1-3600 s, default 5."
    )
    gluetun_port_cache_ttl_s: Annotated[int, INT] = Field(
        60, ge=1, le=86400,
        description="How long the forwarded port is cached, sparing the control server a call per read, "
        "1-86400 s, default 60.",
    )
    gluetun_startup_wait_s: Annotated[int, INT] = Field(
        60, ge=0, le=3600,
        description="Bounded wait at start for a healthy VPN before the minimum pool is created, 0-3600 s, "
        "default 60.",
    )
    vpn_restart_engines_on_reconnect: Bool = Field(
        True,
        description="After a VPN recovery, restart the engines created before it, whose connections went through "
        "the old tunnel; default true.",
    )
    vpn_recovery_stabilize_s: Annotated[int, INT] = Field(
        30, ge=0, le=3600,
        description="How long the VPN must stay healthy before those restarts, so that a flapping tunnel does not "
        "restart engines on every blip, 0-3600 s, default 30.",
    )

    gluetun_container_names: Str | None = Field(
        None,
        description="Several VPNs: comma-separated Gluetun container names (gluetun-a,gluetun-b); each new engine "
        "joins the healthy one with the fewest engines, and provisioning goes on while any is up; default unset "
        "(the one VPN of GLUETUN_CONTAINER_NAME). When both are set, this list wins.",
    )
    gluetun_port_ranges: Str | None = Field(
        None,
        description="Host port range of each VPN's engines, comma-separated A-B in the order of "
        "GLUETUN_CONTAINER_NAMES, each published by its Gluetun; default unset (PORT_RANGE_HOST split into equal "
        "parts, one per VPN).",
    )
    gluetun_api_urls: Str | None = Field(
        None,
        description="Control server base URL of each VPN, comma-separated in the order of GLUETUN_CONTAINER_NAMES; "
        "an empty item falls back to http://<name>:<GLUETUN_API_PORT> or the container's IP; default unset.",
    )
    gluetun_api_keys: SecretStr | None = Field(
        None,
        description="X-API-Key of each VPN's control server, comma-separated in the order of "
        "GLUETUN_CONTAINER_NAMES; an empty item uses GLUETUN_API_KEY; default unset. Never logged.",
    )
    vpn_unhealthy_restart_timeout_s: Annotated[int, INT] = Field(
        120, ge=0, le=86400,
        description="A Gluetun container unhealthy (or stopped) this long is restarted through the runtime, and "
        "its engines after it, 0-86400 s, default 120; 0 never restarts it. At most one restart per "
        "VPN_RESTART_WINDOW_S, so a broken tunnel is never restarted in a loop.",
    )
    vpn_restart_window_s: Annotated[int, INT] = Field(
        900, ge=1, le=86400,
        description="The Gluetun restart breaker: after a forced restart, another failure within this window is "
        "recorded but not restarted again, 1-86400 s, default 900.",
    )

    @property
    def names(self) -> list[str]:
        """The Gluetun container names: GLUETUN_CONTAINER_NAMES, else GLUETUN_CONTAINER_NAME, else none."""
        if self.gluetun_container_names:
            return [n.strip() for n in self.gluetun_container_names.split(",") if n.strip()]
        return [self.gluetun_container_name] if self.gluetun_container_name else []

    @property
    def enabled(self) -> bool:
        """VPN mode is on when ``GLUETUN_CONTAINER_NAME`` or ``GLUETUN_CONTAINER_NAMES`` is set."""
        return bool(self.names)

    def port_ranges(self, host_range: PortRange) -> list[PortRange]:
        """Each VPN's host port range: GLUETUN_PORT_RANGES, else ``host_range`` split into equal parts."""
        names = self.names
        if self.gluetun_port_ranges:
            return [PortRange.parse(r) for r in self.gluetun_port_ranges.split(",")]
        if len(names) <= 1:
            return [host_range]
        size = len(host_range) // len(names)
        return [PortRange(host_range.start + i * size, host_range.start + (i + 1) * size - 1)
                for i in range(len(names))]

    def api_urls(self) -> list[str | None]:
        """Each VPN's control server URL (None: resolve it from the container)."""
        names = self.names
        if self.gluetun_api_urls and len(names) > 1:
            items = [u.strip() or None for u in self.gluetun_api_urls.split(",")]
            return (items + [None] * len(names))[: len(names)]
        return [self.gluetun_api_url] * len(names) if len(names) <= 1 else [None] * len(names)

    def api_keys(self) -> list[SecretStr | None]:
        """Each VPN's control server key (GLUETUN_API_KEY where none is given)."""
        names = self.names
        if self.gluetun_api_keys and len(names) > 1:
            items = [SecretStr(k.strip()) if k.strip() else self.gluetun_api_key
                     for k in self.gluetun_api_keys.get_secret_value().split(",")]
            return (items + [self.gluetun_api_key] * len(names))[: len(names)]
        return [self.gluetun_api_key] * len(names)

    @model_validator(mode="after")
    def _lists_line_up(self) -> VpnSettings:
        names = self.names
        if len(set(names)) != len(names):
            raise ValueError("GLUETUN_CONTAINER_NAMES: names must be distinct")
        for var, value in (("GLUETUN_PORT_RANGES", self.gluetun_port_ranges),
                           ("GLUETUN_API_URLS", self.gluetun_api_urls)):
            if value and len(value.split(",")) != len(names):
                raise ValueError(f"{var}: needs one item per name of GLUETUN_CONTAINER_NAMES ({len(names)})")
        ranges = self.port_ranges(PortRange(1, 65535))
        for i, a in enumerate(ranges):
            for b in ranges[i + 1:]:
                if a.overlaps(b):
                    raise ValueError(f"GLUETUN_PORT_RANGES: {a} and {b} overlap")
        return self
