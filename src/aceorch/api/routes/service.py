"""Service endpoints (api.md §9): liveness, readiness, metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from aceorch.api.deps import ServiceDep

router = APIRouter(tags=["service"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process serves."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready"}})
async def readyz(service: ServiceDep) -> Any:
    """Startup reconciliation done, database and runtime answering."""
    checks = service.readiness()
    if all(v == "ok" for v in checks.values()):
        return {"status": "ready", "checks": checks}
    return JSONResponse({"status": "not_ready", "checks": checks}, status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics", response_class=Response)
@router.get("/metrics/", response_class=Response, include_in_schema=False)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus text format."""
    service.metrics.debug_written.set(service.debuglog.entries_written)
    service.metrics.debug_dropped.set(service.debuglog.entries_dropped)
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
