"""The standalone proxy's orchestrator client: a remote aceorch over its HTTP API.

``GET /engines``, ``POST /provision/acestream``, ``POST /events/stream_started`` and ``/events/stream_ended``,
and ``POST /engines/{id}/health-report`` for an engine that hung under a live stream, with the API key as a
bearer token and the viewer request's id as ``X-Request-ID`` (and a ``traceparent`` carrying it when it is a
32-hex trace id), so that the orchestrator's records carry the same id.

The P2P port holders are the engines ``GET /engines`` lists with the ``aceorch.p2p_port`` label (one per VPN).
The engine watch polls ``GET /engines`` every ``interval_s``: one small request, robust to reconnects and needing
no stream parser, and its delay (2 s by default) is small beside a VPN check interval.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
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
from aceorch.proxy.client import EnginesChanged

__all__ = ["HttpOrchestrator"]

logger = logging.getLogger(__name__)

BLOCKED = {c.default_code: c for c in (RuntimeBlocked, VpnBlocked, BreakerBlocked, CapacityBlocked)}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
#: How long an engine start may take through the API (the orchestrator answers once the engine is ready).
PROVISION_TIMEOUT_S = 120.0
#: The label on the engine that holds its VPN's forwarded P2P port.
P2P_LABEL = "aceorch.p2p_port"


def _engine(d: dict[str, Any]) -> Engine:
    port = int(d.get("port") or d.get("host_http_port") or 0)
    used = d.get("last_stream_usage")
    labels = {str(k): str(v) for k, v in (d.get("labels") or {}).items()}
    p2p = labels.get(P2P_LABEL, "")
    return Engine(
        container_id=str(d["container_id"]), container_name=str(d.get("container_name") or d["container_id"]),
        host=str(d.get("host") or "127.0.0.1"), port=port, host_http_port=int(d.get("host_http_port") or port),
        container_http_port=int(d.get("container_http_port") or port), streams=list(d.get("streams") or []),
        health_status=HealthStatus(d.get("health_status") or "unknown"),
        last_stream_usage=parse_time(used) if used else None, labels=labels,
        p2p_port=int(p2p) if p2p.isdigit() else None,
    )


class HttpOrchestrator:
    """The orchestrator client over HTTP (the standalone ``aceorch proxy``)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout,
                                       transport=transport)
        #: The P2P port holders of the last engine list.
        self._holders: frozenset[str] = frozenset()

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
        engines = [_engine(d) for d in resp.json()]
        self._holders = frozenset(e.container_id for e in engines if e.p2p_port is not None)
        return engines

    async def p2p_holders(self) -> frozenset[str]:
        """The engines labelled with a forwarded P2P port in the last engine list (selection reads it just
        before), so that choosing an engine costs one request."""
        return self._holders

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
        """``POST /engines/{id}/health-report``; a failure is logged (the orchestrator's probes find it anyway)."""
        body: dict[str, Any] = {"reason": reason[:500] or "hung", "request_id": request_id}
        try:
            resp = await self._http.post(f"/engines/{container_id}/health-report", json=body,
                                         headers=self._ids(request_id))
        except httpx.HTTPError as exc:
            logger.warning("engine %s hung under a live stream (%s); the report failed: %s: %s",
                           container_id[:12], reason, type(exc).__name__, exc)
            return
        if resp.status_code != 200:
            logger.warning("engine %s hung under a live stream (%s); the report answered HTTP %d",
                           container_id[:12], reason, resp.status_code)

    async def watch_engines(self, changed: EnginesChanged, *, interval_s: float) -> None:
        """``GET /engines`` every ``interval_s`` seconds, each answer handed to ``changed``, until cancelled; a
        failed read is skipped (an orchestrator that does not answer says nothing about its engines)."""
        while True:
            asof = time.monotonic()
            try:
                listed = await self.engines()
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                logger.debug("engine watch: GET /engines failed: %s: %s", type(exc).__name__, exc)
            else:
                changed({e.container_id: e for e in listed}, asof)
            await asyncio.sleep(interval_s)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()
