"""Status endpoints (api.md §7): from memory, within milliseconds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from aceorch.api.deps import ServiceDep, require_key

router = APIRouter(tags=["status"])


@router.get("/orchestrator/status")
async def orchestrator_status(service: ServiceDep) -> dict[str, Any]:
    """Engines, streams, capacity, VPN and whether provisioning is possible now."""
    return service.orchestrator_status()


@router.get("/vpn/status")
async def vpn_status(service: ServiceDep) -> dict[str, Any]:
    """The VPN monitor's last check."""
    return service.vpn.public()


@router.get("/health/status")
async def health_status(service: ServiceDep) -> dict[str, Any]:
    """Engine health counts and both circuit breakers."""
    return service.health_status()


@router.post("/health/circuit-breaker/reset", dependencies=[Depends(require_key)],
             responses={400: {"description": "unknown circuit breaker"}})
async def reset_breaker(service: ServiceDep, operation_type: str | None = None) -> dict[str, Any]:
    """Force-close one breaker, or both."""
    if operation_type is not None and operation_type not in service.breakers:
        raise HTTPException(400, f"unknown circuit breaker '{operation_type}'; expected general or replacement")
    for name, breaker in service.breakers.items():
        if operation_type in (None, name):
            breaker.reset()
            service.record("circuit_breaker", operation="manual_reset", operation_type=name)
    which = operation_type or "all"
    return {
        "message": f"Circuit breaker {'for ' + which if operation_type else which} reset successfully",
        "circuit_breakers": {n: b.public() for n, b in service.breakers.items()},
    }
