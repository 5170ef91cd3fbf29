"""Provisioning: AceStream engines, generic containers, scaling and the idle sweep (api.md §4.1–4.4)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from aceorch.aiokits import request_id_var
from aceorch.api.deps import ServiceDep, require_key
from aceorch.api.schemas import ProvisionAceBody, ProvisionGenericBody
from aceorch.control.provisioner import ProvisionRequest

router = APIRouter(tags=["provisioning"], dependencies=[Depends(require_key)])

PROVISION_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "provisioning_rejected: image_not_found"},
    401: {"description": "missing bearer token"},
    403: {"description": "invalid token"},
    409: {"description": "provisioning_rejected: port_conflict or unsupported_runtime"},
    500: {"description": "provisioning_failed: general_error"},
    503: {"description": "provisioning_blocked, or provisioning_failed: vpn_error (with Retry-After)"},
}


@router.post("/provision/acestream", responses=PROVISION_ERRORS)
async def provision_acestream(service: ServiceDep, body: ProvisionAceBody | None = None) -> dict[str, Any]:
    """Start one AceStream engine and answer once it is ready. No body means ``{}``."""
    body = body or ProvisionAceBody()
    engine, _ = await service.provision(
        ProvisionRequest(
            image=body.image, labels=body.labels, env=body.env, host_port=body.host_port, source="api",
            request_id=request_id_var.get(),
        )
    )
    return {
        "container_id": engine.container_id,
        "container_name": engine.container_name,
        "host_http_port": engine.host_http_port,
        "container_http_port": engine.container_http_port,
        "container_https_port": engine.container_https_port,
        "host": engine.host,
    }


@router.post("/provision", responses=PROVISION_ERRORS)
async def provision_container(service: ServiceDep, body: ProvisionGenericBody | None = None) -> dict[str, str]:
    """Start a generic (non-engine) managed container. No body means ``{}``."""
    body = body or ProvisionGenericBody()
    return await service.provision_generic(
        image=body.image, env=body.env, labels=body.labels, ports=body.ports, name_prefix=body.name_prefix,
        request_id=request_id_var.get(),
    )


@router.post("/scale/{demand}", responses={503: {"description": "provisioning_blocked"}})
async def scale(demand: Annotated[int, Path(ge=0, le=10000)], service: ServiceDep) -> dict[str, Any]:
    """Scale the pool to ``min(max(MIN_REPLICAS, demand), MAX_REPLICAS)`` engines."""
    return await service.scale(demand, request_id_var.get())


@router.post("/gc")
async def gc(service: ServiceDep) -> dict[str, Any]:
    """Run the idle sweep now and prune old streams."""
    return await service.gc()
