"""Debug mode at run time (api.md §8)."""

from __future__ import annotations

import asyncio
import os
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from aceorch.api.deps import ServiceDep, require_key
from aceorch.api.routes.streams import _since
from aceorch.errors import DebugDirError

router = APIRouter(tags=["debug"])


@router.get("/debug/status")
async def debug_status(service: ServiceDep) -> dict[str, Any]:
    """Whether debug mode is on, the session, its files and counters."""
    return await asyncio.to_thread(service.debuglog.status)


@router.post("/debug/enable", dependencies=[Depends(require_key)],
             responses={503: {"description": "cannot write to DEBUG_LOG_DIR"}})
async def debug_enable(service: ServiceDep) -> dict[str, Any]:
    """Start a debug session now."""
    try:
        changed = await asyncio.to_thread(service.debuglog.enable, "api")
    except DebugDirError as exc:
        raise HTTPException(
            503, f"cannot write to DEBUG_LOG_DIR '{service.settings.debug_log_dir}': {exc}",
            headers={"Retry-After": "30"},
        ) from None
    body = await asyncio.to_thread(service.debuglog.status)
    return {**body, "changed": changed}


@router.post("/debug/disable", dependencies=[Depends(require_key)])
async def debug_disable(service: ServiceDep) -> dict[str, Any]:
    """End the debug session; its files stay."""
    changed = await asyncio.to_thread(service.debuglog.disable)
    body = await asyncio.to_thread(service.debuglog.status)
    return {**body, "changed": changed}


@router.get("/debug/bundle", dependencies=[Depends(require_key)],
            responses={404: {"description": "no debug session"}})
async def debug_bundle(
    service: ServiceDep,
    session: Annotated[str | None, Query(pattern=r"^\d{8}_\d{6}(_\d+)?$")] = None,
) -> FileResponse:
    """A tar.gz of one session's files and a manifest."""
    try:
        path = await asyncio.to_thread(service.debuglog.bundle, session)
    except LookupError as exc:
        raise HTTPException(404, str(exc.args[0]) if exc.args else "no debug session") from None
    # Fix (dashboard helper): the temp file is "aceorch-debug-<session>-<random>.tar.gz" (mkstemp); the
    # attachment name must be "aceorch-debug-<session>.tar.gz" (api.md §8), so take the session id only.
    found = re.match(r"aceorch-debug-(\d{8}_\d{6}(?:_\d+)?)", path.name)
    name = found.group(1) if found else re.sub(r"^aceorch-debug-|\.tar\.gz$", "", path.name)
    return FileResponse(
        path, media_type="application/gzip", filename=f"aceorch-debug-{name}.tar.gz",
        background=BackgroundTask(os.unlink, path),
    )


@router.get("/debug/stress")
async def debug_stress(
    request: Request,
    service: ServiceDep,
    since: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    event_type: str | None = None,
    severity: Literal["info", "warning", "critical"] | None = None,
) -> list[dict[str, Any]]:
    """The last stress events of this process, oldest first."""
    return service.stress.recent(since=_since(since), limit=limit, event_type=event_type, severity=severity)
