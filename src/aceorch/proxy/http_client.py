"""The standalone proxy's orchestrator client: a remote aceorch over its HTTP API.

``GET /engines``, ``POST /provision/acestream``, ``POST /events/stream_started`` and ``/events/stream_ended``,
with the API key as a bearer token and the viewer request's id as ``X-Request-ID`` (and a ``traceparent``
carrying it when it is a 32-hex trace id), so that the orchestrator's records carry the same id.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

import httpx

from aceorch.aiokits import trace_id_var
from aceorch.errors import (
    BreakerBlocked,
    CapacityBlocked,
    ProvisioningBlocked,
    ProvisioningError,
    ProvisioningFailed,
    RuntimeBlocked,
    VpnBlocked,
)
from aceorch.models import Engine, HealthStatus, StreamStart, parse_time

__all__ = ["HttpOrchestrator"]

logger = logging.getLogger(__name__)

BLOCKED = {c.default_code: c for c in (RuntimeBlocked, VpnBlocked, BreakerBlocked, CapacityBlocked)}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
#: How long an engine start may take through the API (the orchestrator answers once the engine is ready).
PROVISION_TIMEOUT_S = 120.0


def _engine(d: dict[str, Any]) -> Engine:
    port = int(d.get("port") or d.get("host_http_port") or 0)
    used = d.get("last_stream_usage")
    return Engine(
        container_id=str(d["container_id"]), container_name=str(d.get("container_name") or d["container_id"]),
        host=str(d.get("host") or "127.0.0.1"), port=port, host_http_port=int(d.get("host_http_port") or port),
        container_http_port=int(d.get("container_http_port") or port), streams=list(d.get("streams") or []),
        health_status=HealthStatus(d.get("health_status") or "unknown"),
        last_stream_usage=parse_time(used) if used else None,
    )


class HttpOrchestrator:
    """The orchestrator client over HTTP (the standalone ``aceorch proxy``)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout,
                                       transport=transport)

    @staticmethod
    def _ids(request_id: str | None) -> dict[str, str]:
        if not request_id:
            return {}
        out = {"X-Request-ID": request_id}
        trace = trace_id_var.get() or (request_id if HEX32.match(request_id) else None)
        if trace:
            out["traceparent"] = f"00-{trace}-{secrets.token_hex(8)}-01"
        return out

    async def engines(self) -> list[Engine]:
        """``GET /engines``."""
        resp = await self._http.get("/engines")
        resp.raise_for_status()
        return [_engine(d) for d in resp.json()]

    async def p2p_holder(self) -> str | None:
        """Unknown over the API: the engine list does not say which engine holds the forwarded port."""
        return None

    async def provision(self, request_id: str | None) -> Engine:
        """``POST /provision/acestream``; a refusal becomes the matching ProvisioningError."""
        try:
            resp = await self._http.post("/provision/acestream", json={}, headers=self._ids(request_id),
                                         timeout=PROVISION_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise ProvisioningFailed(f"the orchestrator did not answer: {type(exc).__name__}: {exc}",
                                     can_retry=True) from exc
        if resp.status_code == 200:
            return _engine(resp.json())
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = None
        detail = detail if isinstance(detail, dict) else {"message": str(detail or resp.text[:200])}
        code = str(detail.get("code") or "general_error")
        message = str(detail.get("message") or f"provisioning answered HTTP {resp.status_code}")
        eta = detail.get("recovery_eta_seconds")
        retry = resp.headers.get("Retry-After")
        eta = int(eta) if isinstance(eta, int) else (int(retry) if retry and retry.isdigit() else None)
        err: ProvisioningError
        if resp.status_code == 503:
            err = BLOCKED.get(code, ProvisioningBlocked)(message, recovery_eta_seconds=eta, should_wait=True)
        else:
            err = ProvisioningFailed(message, recovery_eta_seconds=eta)
        err.code = code
        raise err

    async def stream_started(self, start: StreamStart, request_id: str | None) -> str:
        """``POST /events/stream_started``; the stream's id."""
        body = {
            "container_id": start.container_id,
            "engine": {"host": start.engine_host, "port": start.engine_port},
            "stream": {"key_type": start.key_type, "key": start.key},
            "session": {"playback_session_id": start.playback_session_id, "stat_url": start.stat_url,
                        "command_url": start.command_url, "is_live": 1 if start.is_live else 0},
            "labels": start.labels,
        }
        resp = await self._http.post("/events/stream_started", json=body, headers=self._ids(request_id))
        resp.raise_for_status()
        return str(resp.json()["id"])

    async def stream_ended(self, container_id: str, stream_id: str, reason: str, request_id: str | None) -> None:
        """``POST /events/stream_ended``."""
        resp = await self._http.post("/events/stream_ended", headers=self._ids(request_id),
                                     json={"container_id": container_id, "stream_id": stream_id, "reason": reason})
        resp.raise_for_status()

    async def report_unhealthy(self, container_id: str, reason: str, request_id: str | None) -> None:
        """The API has no route for it: the orchestrator's own probes find the hung engine; logged here."""
        logger.warning("engine %s hung under a live stream (%s); the orchestrator's health probes will see it",
                       container_id[:12], reason)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()
