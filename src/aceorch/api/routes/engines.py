"""The engine routes: every ready engine, and one engine with its streams, served from memory."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from aceorch.api.deps import ServiceDep, require_key
from aceorch.api.schemas import AUTH_ERRORS, EngineDetailPublic, EnginePublic, ErrorPublic, StreamPublic

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
