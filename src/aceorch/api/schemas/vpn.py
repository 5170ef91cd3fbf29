"""The response models of the VPN: the monitor's last check, and the VPN as the orchestrator status shows it."""

from __future__ import annotations

from pydantic import SerializerFunctionWrapHandler, model_serializer

from aceorch.api.schemas.common import Time, _Public

__all__ = ["VpnEntryPublic", "VpnStatusPublic", "VpnSummaryEntryPublic", "VpnSummaryPublic"]


class VpnEntryPublic(_Public):
    """One VPN of several: its Gluetun, its last check, the signal that decided, its engines and port range."""

    name: str | None
    container: str | None
    status: str
    health: str
    connected: bool
    signal: str | None
    forwarded_port: int | None
    public_ip: str | None
    control_server: str | None
    engines: int | None
    port_range: str | None
    reason: str | None
    last_check: Time | None
    error: str | None


class VpnStatusPublic(_Public):
    """The VPN monitor's last check (with several VPNs: connected while any is, and ``vpns``, one entry each).

    With the VPN disabled the body has no ``public_ip`` or ``control_server``; ``error`` appears only when the
    last check failed with one.
    """

    enabled: bool
    status: str
    container_name: str | None
    container: str | None
    health: str
    connected: bool
    forwarded_port: int | None
    public_ip: str | None = None
    control_server: str | None = None
    last_check: Time | None
    last_check_at: Time | None
    error: str | None = None
    vpns: list[VpnEntryPublic] | None = None

    # No return annotation: pydantic would take it for the serialised schema and hide the fields from OpenAPI.
    @model_serializer(mode="wrap")
    def _present_fields(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        body = handler(self)
        if not self.enabled:
            body.pop("public_ip", None)
            body.pop("control_server", None)
        if self.error is None:
            body.pop("error", None)
        if self.vpns is None:
            body.pop("vpns", None)
        return body


class VpnSummaryEntryPublic(_Public):
    """One VPN of several in the orchestrator status."""

    name: str | None
    connected: bool
    health: str
    forwarded_port: int | None
    engines: int | None
    reason: str | None


class VpnSummaryPublic(_Public):
    """The VPN as the orchestrator status shows it (with several: connected while any is, and ``vpns``)."""

    enabled: bool
    connected: bool
    health: str
    container: str | None
    forwarded_port: int | None
    vpns: list[VpnSummaryEntryPublic] | None = None

    # No return annotation: pydantic would take it for the serialised schema and hide the fields from OpenAPI.
    @model_serializer(mode="wrap")
    def _present_fields(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        body = handler(self)
        if self.vpns is None:
            body.pop("vpns", None)
        return body
