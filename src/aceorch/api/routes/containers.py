"""The managed-container routes: read or delete one container, and find containers by label."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from aceorch.api.deps import ServiceDep, require_key
from aceorch.api.schemas import AUTH_ERRORS, ContainerDeletedPublic, ContainerPublic, ErrorPublic

router = APIRouter(tags=["containers"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "container not found"},
    503: {"model": ErrorPublic, "description": "container runtime unavailable"},
}


@router.get("/containers/{container_id}", response_model=ContainerPublic, responses={**AUTH_ERRORS, **ERRORS},
            dependencies=[Depends(require_key)])
async def read_container(container_id: str, service: ServiceDep) -> ContainerPublic:
    """A managed container, by id, unique id prefix, or name."""
    info = await service.fleet.find_managed(container_id)
    return ContainerPublic.model_validate(info)


@router.delete("/containers/{container_id}", response_model=ContainerDeletedPublic,
               responses={**AUTH_ERRORS, **ERRORS}, dependencies=[Depends(require_key)])
async def delete_container(container_id: str, service: ServiceDep) -> ContainerDeletedPublic:
    """Stop and remove a managed container; an engine's streams end as ``engine_deleted``."""
    full = await service.fleet.delete_container(container_id)
    return ContainerDeletedPublic(deleted=container_id, container_id=full)


@router.get("/by-label", response_model=list[ContainerPublic], dependencies=[Depends(require_key)],
            responses={**AUTH_ERRORS, 503: ERRORS[503]})
async def by_label(service: ServiceDep, key: str = Query(min_length=1), value: str = Query()) -> list[ContainerPublic]:
    """Managed containers whose label ``key`` equals ``value``."""
    return [ContainerPublic.model_validate(c) for c in await service.fleet.by_label(key, value)]
