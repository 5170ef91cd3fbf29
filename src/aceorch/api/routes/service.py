"""The service routes: liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from aceorch.api.deps import ServiceDep, require_metrics_key
from aceorch.api.schemas import AUTH_ERRORS, LivenessPublic, ReadinessPublic

router = APIRouter(tags=["service"])


@router.get("/healthz", response_model=LivenessPublic)
async def healthz() -> LivenessPublic:
    """The process serves."""
    return LivenessPublic(status="ok")


@router.get("/readyz", response_model=ReadinessPublic,
            responses={503: {"model": ReadinessPublic, "description": "not ready (with Retry-After)"}})
async def readyz(service: ServiceDep) -> ReadinessPublic | JSONResponse:
    """Ready once startup reconciliation is done and the runtime answers; a database outage is shown, not fatal.

    While the database is down aceorch keeps provisioning and streaming from memory and queues its writes, so
    ``database: down`` does not take it out of service.
    """
    checks = service.status.readiness()
    if all(v == "ok" for k, v in checks.items() if k != "database"):
        return ReadinessPublic.model_validate({"status": "ready", "checks": checks})
    body = ReadinessPublic.model_validate({"status": "not_ready", "checks": checks})
    return JSONResponse(body.model_dump(mode="json"), status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics", response_class=Response, dependencies=[Depends(require_metrics_key)],
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "the Prometheus text exposition format"}, **AUTH_ERRORS})
@router.get("/metrics/", response_class=Response, include_in_schema=False, dependencies=[Depends(require_metrics_key)])
async def metrics(service: ServiceDep) -> Response:
    """Prometheus text format."""
    return Response(service.render_metrics(), media_type=CONTENT_TYPE_LATEST)
