"""Dependencies: the service, and Bearer auth (constant-time, before body validation)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from aceorch.service.core import Service

__all__ = ["get_service", "ServiceDep", "require_key", "check_auth"]


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def check_auth(request: Request) -> None:
    """401 without a Bearer token, 403 with a wrong one; open when API_KEY is unset."""
    key = request.app.state.settings.api_key_value()
    if not key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.strip().encode("utf-8"), key.encode("utf-8")):
        raise HTTPException(403, "invalid token")


def require_key(request: Request) -> None:
    check_auth(request)
