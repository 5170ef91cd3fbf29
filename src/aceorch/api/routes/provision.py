"""The provisioning routes: AceStream engines, generic containers, scaling and the idle sweep (all need the key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from aceorch.aiokits import request_id_var
from aceorch.api.deps import ServiceDep, require_key
from aceorch.api.policy import check_ace_body, check_generic_body
from aceorch.api.schemas import (
    AUTH_ERRORS,
    ContainerProvisionedPublic,
    EngineProvisionedPublic,
    GcPublic,
    ProvisionAceBody,
    ProvisionGenericBody,
    ProvisioningErrorPublic,
    ScalePublic,
)
from aceorch.control.admission import ProvisionRequest

router = APIRouter(tags=["provisioning"], dependencies=[Depends(require_key)])

PROVISION_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ProvisioningErrorPublic, "description": "provisioning_rejected: image_not_found"},
    **AUTH_ERRORS,
    409: {"model": ProvisioningErrorPublic,
          "description": "provisioning_rejected: port_conflict or unsupported_runtime"},
    500: {"model": ProvisioningErrorPublic, "description": "provisioning_failed: general_error"},
    503: {"model": ProvisioningErrorPublic,
          "description": "provisioning_blocked, or provisioning_failed: vpn_error (with Retry-After)"},
}


@router.post("/provision/acestream", response_model=EngineProvisionedPublic, responses=PROVISION_ERRORS)
async def provision_acestream(service: ServiceDep, body: ProvisionAceBody | None = None) -> EngineProvisionedPublic:
    """Start one AceStream engine and answer once it is ready. No body means ``{}``."""
    body = body or ProvisionAceBody()
    check_ace_body(service.settings, body)
    engine, _ = await service.provisioning.provision(
        ProvisionRequest(
            image=body.image, labels=body.labels, env=body.env, host_port=body.host_port, source="api",
            request_id=request_id_var.get(),
        )
    )
    return EngineProvisionedPublic.model_validate(engine)


@router.post("/provision", response_model=ContainerProvisionedPublic, responses=PROVISION_ERRORS)
async def provision_container(
    service: ServiceDep, body: ProvisionGenericBody | None = None
) -> ContainerProvisionedPublic:
    """Start a generic (non-engine) managed container. No body means ``{}``."""
    body = body or ProvisionGenericBody()
    check_generic_body(service.settings, body)
    started = await service.provisioning.provision_generic(
        image=body.image, env=body.env, labels=body.labels, ports=body.ports, name_prefix=body.name_prefix,
        request_id=request_id_var.get(),
    )
    return ContainerProvisionedPublic.model_validate(started)


@router.post("/scale/{demand}", response_model=ScalePublic,
             responses={**AUTH_ERRORS, 503: {"model": ProvisioningErrorPublic, "description": "provisioning_blocked"}})
async def scale(demand: Annotated[int, Path(ge=0, le=10000)], service: ServiceDep) -> ScalePublic:
    """Scale the pool to ``min(max(MIN_REPLICAS, demand), MAX_REPLICAS)`` engines."""
    return ScalePublic.model_validate(await service.provisioning.scale(demand, request_id_var.get()))


@router.post("/gc", response_model=GcPublic, responses=AUTH_ERRORS)
async def gc(service: ServiceDep) -> GcPublic:
    """Run the idle sweep now and prune old streams."""
    return GcPublic.model_validate(await service.provisioning.gc())
