"""Engines, served from memory (api.md §6)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from aceorch.api.deps import ServiceDep

router = APIRouter(tags=["engines"])


@router.get("/engines")
async def read_engines(service: ServiceDep) -> list[dict[str, Any]]:
    """Every ready engine, oldest first."""
    return [e.public() for e in service.engines_sorted()]


@router.get("/engines/{container_id}", responses={404: {"description": "engine not found"}})
async def read_engine(container_id: str, service: ServiceDep) -> dict[str, Any]:
    """One engine (by id or name) and its started streams."""
    for engine in service.engines.values():
        if container_id in (engine.container_id, engine.container_name):
            streams = [service.streams[s].public() for s in engine.streams if s in service.streams]
            return {"engine": engine.public(), "streams": streams}
    raise HTTPException(404, "engine not found")
