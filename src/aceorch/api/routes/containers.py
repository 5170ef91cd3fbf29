"""Managed containers (api.md §4.5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from aceorch.api.deps import ServiceDep, require_key
from aceorch.models import format_time
from aceorch.runtime.base import ContainerInfo

router = APIRouter(tags=["containers"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "container not found"},
    503: {"description": "container runtime unavailable"},
}


def summary(info: ContainerInfo, runtime: str, engine_command: str) -> dict[str, Any]:
    created: datetime = info.created
    return {
        "id": info.id,
        "name": info.name,
        "image": info.image,
        "created": format_time(created),
        "status": info.status,
        "labels": info.labels,
        "ports": info.ports,
    }


@router.get("/containers/{container_id}", responses=ERRORS)
async def read_container(container_id: str, service: ServiceDep) -> dict[str, Any]:
    """A managed container, by id, unique id prefix, or name."""
    info = await service.find_managed(container_id)
    return summary(info, service.runtime.name, service.settings.engine_command)


@router.delete("/containers/{container_id}", responses=ERRORS, dependencies=[Depends(require_key)])
async def delete_container(container_id: str, service: ServiceDep) -> dict[str, str]:
    """Stop and remove a managed container; an engine's streams end as ``engine_deleted``."""
    full = await service.delete_container(container_id)
    return {"deleted": container_id, "container_id": full}


@router.get("/by-label", dependencies=[Depends(require_key)])
async def by_label(service: ServiceDep, key: str = Query(min_length=1), value: str = Query()) -> list[dict[str, Any]]:
    """Managed containers whose label ``key`` equals ``value``."""
    return [summary(c, service.runtime.name, service.settings.engine_command)
            for c in await service.by_label(key, value)]
