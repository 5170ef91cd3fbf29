"""The debug routes: debug mode on and off at run time, its status, a session bundle, and recent stress events."""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from aceorch.api.deps import ServiceDep, require_key
from aceorch.api.routes.streams import _since
from aceorch.api.schemas import AUTH_ERRORS, DebugChangedPublic, DebugStatusPublic, ErrorPublic, StressEventPublic
from aceorch.errors import DebugDirError

router = APIRouter(tags=["debug"])


@router.get("/debug/status", response_model=DebugStatusPublic, dependencies=[Depends(require_key)],
            responses=AUTH_ERRORS)
async def debug_status(service: ServiceDep) -> DebugStatusPublic:
    """Whether debug mode is on, the session, its files and counters."""
    return DebugStatusPublic.model_validate(await service.debug.status())


@router.post("/debug/enable", response_model=DebugChangedPublic, dependencies=[Depends(require_key)],
             responses={**AUTH_ERRORS, 503: {"model": ErrorPublic, "description": "cannot write to DEBUG_LOG_DIR"}})
async def debug_enable(service: ServiceDep) -> DebugChangedPublic:
    """Start a debug session now."""
    try:
        changed, body = await service.debug.enable("api")
    except DebugDirError as exc:
        raise HTTPException(
            503, f"cannot write to DEBUG_LOG_DIR '{service.settings.debug.debug_log_dir}': {exc}",
            headers={"Retry-After": "30"},
        ) from None
    return DebugChangedPublic.model_validate({**body, "changed": changed})


@router.post("/debug/disable", response_model=DebugChangedPublic, dependencies=[Depends(require_key)],
             responses=AUTH_ERRORS)
async def debug_disable(service: ServiceDep) -> DebugChangedPublic:
    """End the debug session; its files stay."""
    changed, body = await service.debug.disable()
    return DebugChangedPublic.model_validate({**body, "changed": changed})


@router.get("/debug/bundle", response_class=FileResponse, dependencies=[Depends(require_key)],
            responses={200: {"content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "a tar.gz of the session's files and a manifest"},
                       **AUTH_ERRORS, 404: {"model": ErrorPublic, "description": "no debug session"}})
async def debug_bundle(
    service: ServiceDep,
    session: Annotated[str | None, Query(pattern=r"^\d{8}_\d{6}(_\d+)?$")] = None,
) -> FileResponse:
    """A tar.gz of one session's files and a manifest."""
    try:
        path = await service.debug.bundle(session)
    except LookupError as exc:
        raise HTTPException(404, str(exc.args[0]) if exc.args else "no debug session") from None
    # The temporary file is "aceorch-debug-<session>-<random>.tar.gz"; the attachment is named
    # "aceorch-debug-<session>.tar.gz", so only the session id is taken from it.
    found = re.match(r"aceorch-debug-(\d{8}_\d{6}(?:_\d+)?)", path.name)
    name = found.group(1) if found else re.sub(r"^aceorch-debug-|\.tar\.gz$", "", path.name)
    return FileResponse(
        path, media_type="application/gzip", filename=f"aceorch-debug-{name}.tar.gz",
        background=BackgroundTask(os.unlink, path),
    )


@router.get("/debug/stress", response_model=list[StressEventPublic], dependencies=[Depends(require_key)],
            responses=AUTH_ERRORS)
async def debug_stress(
    request: Request,
    service: ServiceDep,
    since: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    event_type: str | None = None,
    severity: Literal["info", "warning", "critical"] | None = None,
) -> list[StressEventPublic]:
    """The last stress events of this process, oldest first."""
    events = service.debug.stress_events(since=_since(since), limit=limit, event_type=event_type, severity=severity)
    return [StressEventPublic.model_validate(e) for e in events]
