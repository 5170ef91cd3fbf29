"""The status routes: orchestrator, VPN and health status, and the breaker reset; served from memory."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from aceorch.api.deps import ServiceDep, require_key
from aceorch.api.schemas import (
    AUTH_ERRORS,
    BreakerPublic,
    BreakerResetPublic,
    ErrorPublic,
    HealthStatusPublic,
    OrchestratorStatusPublic,
    VpnStatusPublic,
)

router = APIRouter(tags=["status"])


@router.get("/orchestrator/status", response_model=OrchestratorStatusPublic)
async def orchestrator_status(service: ServiceDep) -> OrchestratorStatusPublic:
    """Engines, streams, capacity, VPN and whether provisioning is possible now."""
    return OrchestratorStatusPublic.model_validate(service.status.orchestrator_status())


@router.get("/vpn/status", response_model=VpnStatusPublic, dependencies=[Depends(require_key)],
            responses=AUTH_ERRORS)
async def vpn_status(service: ServiceDep) -> VpnStatusPublic:
    """The VPN monitor's last check."""
    return VpnStatusPublic.model_validate(service.status.vpn_status())


@router.get("/health/status", response_model=HealthStatusPublic, dependencies=[Depends(require_key)],
            responses=AUTH_ERRORS)
async def health_status(service: ServiceDep) -> HealthStatusPublic:
    """Engine health counts and both circuit breakers."""
    return HealthStatusPublic.model_validate(service.status.health_status())


@router.post("/health/circuit-breaker/reset", response_model=BreakerResetPublic, dependencies=[Depends(require_key)],
             responses={**AUTH_ERRORS, 400: {"model": ErrorPublic, "description": "unknown circuit breaker"}})
async def reset_breaker(service: ServiceDep, operation_type: str | None = None) -> BreakerResetPublic:
    """Force-close one breaker, or both."""
    try:
        service.breakers.reset(operation_type)
    except KeyError:
        raise HTTPException(
            400, f"unknown circuit breaker '{operation_type}'; expected general or replacement"
        ) from None
    which = operation_type or "all"
    return BreakerResetPublic(
        message=f"Circuit breaker {'for ' + which if operation_type else which} reset successfully",
        circuit_breakers={n: BreakerPublic.model_validate(b) for n, b in service.breakers.items()},
    )
