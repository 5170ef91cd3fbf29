"""The engine routes: every ready engine, and one engine with its streams, served from memory; and a proxy's
report of an engine that hung under a live stream (the same path as the embedded proxy's report)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from aceorch.aiokits import request_id_var
from aceorch.api.deps import ServiceDep, require_key
from aceorch.api.schemas import (
    AUTH_ERRORS,
    EngineDetailPublic,
    EngineHealthReportBody,
    EngineHealthReportPublic,
    EnginePublic,
    ErrorPublic,
    StreamPublic,
)
from aceorch.service.proxy_link import report_hang

router = APIRouter(tags=["engines"], dependencies=[Depends(require_key)])


@router.get("/engines", response_model=list[EnginePublic], responses=AUTH_ERRORS)
async def read_engines(service: ServiceDep) -> list[EnginePublic]:
    """Every ready engine, oldest first."""
    return [EnginePublic.model_validate(e) for e in service.fleet.engines_sorted()]


@router.get("/engines/{container_id}", response_model=EngineDetailPublic,
            responses={**AUTH_ERRORS, 404: {"model": ErrorPublic, "description": "engine not found"}})
async def read_engine(container_id: str, service: ServiceDep) -> EngineDetailPublic:
    """One engine (by id or name) and its started streams."""
    engine = service.fleet.find(container_id)
    if engine is None:
        raise HTTPException(404, "engine not found")
    return EngineDetailPublic(engine=EnginePublic.model_validate(engine),
                              streams=[StreamPublic.model_validate(s) for s in service.streams.of_engine(engine)])


@router.post("/engines/{container_id}/health-report", response_model=EngineHealthReportPublic,
             responses={**AUTH_ERRORS, 404: {"model": ErrorPublic, "description": "engine not found"}})
async def report_engine_health(container_id: str, body: EngineHealthReportBody,
                               service: ServiceDep) -> EngineHealthReportPublic:
    """A proxy saw the engine (by id or name) hang under a live stream: it is unhealthy now, as after failed
    health probes up to HEALTH_FAILURE_THRESHOLD, and the pool replaces it. Breakers are not touched."""
    engine = service.fleet.find(container_id)
    if engine is None:
        raise HTTPException(404, "engine not found")
    before = engine.health_status
    report_hang(service, engine.container_id, body.reason, body.request_id or request_id_var.get(), source="api")
    return EngineHealthReportPublic(container_id=engine.container_id, health_status=engine.health_status,
                                    changed=engine.health_status is not before)
