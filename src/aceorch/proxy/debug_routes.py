"""The standalone proxy's debug routes: its debug mode on and off at run time, and its status.

The same shape as the orchestrator's (``GET /debug/status``, ``POST /debug/enable``, ``POST /debug/disable``),
over the proxy's own writer (``app.state.debug_log``, in PROXY_DEBUG_LOG_DIR). They need the API key (bearer)
when API_KEY is set, like ``/proxy/streams``. Enabling starts a new session of the proxy's categories; disabling
ends it and its files stay.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from aceorch.debuglog.writer import DebugLog
from aceorch.errors import DebugDirError
from aceorch.proxy.routes import REFUSALS, _key_refusal

__all__ = ["router", "ProxyDebugStatusPublic", "ProxyDebugChangedPublic"]

router = APIRouter(tags=["debug"])


class ProxyDebugFilePublic(BaseModel):
    """One file of the proxy's debug session: its name, category and size in bytes."""

    name: str
    category: str
    bytes: int


class ProxyDebugStatusPublic(BaseModel):
    """Whether the proxy's debug mode is on, its session, files and counters (as the orchestrator's)."""

    model_config = ConfigDict(extra="ignore")

    enabled: bool
    enabled_by: str | None
    session_id: str | None
    session_started_at: str | None
    log_dir: str
    files: list[ProxyDebugFilePublic]
    entries_written: int
    entries_dropped: int
    queue_depth: int
    last_flush_at: str | None
    last_error: str | None
    settings: dict[str, Any]


class ProxyDebugChangedPublic(ProxyDebugStatusPublic):
    """The proxy's debug status after enable or disable, and whether the call changed it."""

    changed: bool


def _log(request: Request) -> DebugLog:
    log: DebugLog = request.app.state.debug_log
    return log


@router.get("/debug/status", response_model=ProxyDebugStatusPublic, responses=REFUSALS,
            summary="The proxy's debug mode")
async def debug_status(request: Request) -> Response | ProxyDebugStatusPublic:
    """Whether the proxy's debug mode is on, its session, files and counters."""
    refusal = _key_refusal(request)
    if refusal is not None:
        return refusal
    return ProxyDebugStatusPublic.model_validate(await asyncio.to_thread(_log(request).status))


@router.post("/debug/enable", response_model=ProxyDebugChangedPublic,
             responses={**REFUSALS, 503: {"description": "cannot write to PROXY_DEBUG_LOG_DIR"}},
             summary="Start a proxy debug session")
async def debug_enable(request: Request) -> Response | ProxyDebugChangedPublic:
    """Start a debug session of the proxy now (``changed`` false when one runs already)."""
    refusal = _key_refusal(request)
    if refusal is not None:
        return refusal
    log = _log(request)
    try:
        changed = await asyncio.to_thread(log.enable, "api")
    except DebugDirError as exc:
        return JSONResponse({"detail": f"cannot write to PROXY_DEBUG_LOG_DIR '{log.log_dir}': {exc}"},
                            status_code=503, headers={"Retry-After": "30"})
    body = await asyncio.to_thread(log.status)
    return ProxyDebugChangedPublic.model_validate({**body, "changed": changed})


@router.post("/debug/disable", response_model=ProxyDebugChangedPublic, responses=REFUSALS,
             summary="End the proxy's debug session")
async def debug_disable(request: Request) -> Response | ProxyDebugChangedPublic:
    """End the proxy's debug session; its files stay (``changed`` false when none ran)."""
    refusal = _key_refusal(request)
    if refusal is not None:
        return refusal
    log = _log(request)
    changed = await asyncio.to_thread(log.disable)
    body = await asyncio.to_thread(log.status)
    return ProxyDebugChangedPublic.model_validate({**body, "changed": changed})
