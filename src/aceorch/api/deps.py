"""The routes' dependencies: the service, and the bearer-key checks.

Every route needs the key when ``API_KEY`` is set, except ``/healthz``, ``/readyz`` and ``/orchestrator/status``
(proxies read them keyless; they hold no label values) and the dashboard's files. ``/metrics`` needs it when
``METRICS_AUTH=key`` (the default).

The key check is :data:`bearer` (FastAPI's ``HTTPBearer``, so that OpenAPI shows the scheme) followed by a
constant-time comparison with ``API_KEY``. It runs before body validation: a request that needs the key and
has a bad body still gets 401/403 first (the app's validation handler calls :func:`check_auth`).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aceorch.service.core import Service

__all__ = ["get_service", "ServiceDep", "bearer", "require_key", "require_metrics_key", "check_auth", "check_key"]


def get_service(request: Request) -> Service:
    """The app's service, built by the lifespan."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


#: The ``Authorization: Bearer <API_KEY>`` scheme. It only reads the header (None when it is missing or of
#: another scheme); :func:`check_key` decides, so the refusals keep their own bodies.
bearer = HTTPBearer(auto_error=False, description="The API_KEY as a bearer token; unset API_KEY leaves the API open.")


def check_key(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    """401 without a bearer token, 403 with a wrong one; open when API_KEY is unset."""
    key = request.app.state.settings.api_key_value()
    if not key:
        return
    token = credentials.credentials.strip() if credentials is not None else ""
    if not token:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.encode("utf-8"), key.encode("utf-8")):
        raise HTTPException(403, "invalid token")


async def check_auth(request: Request) -> None:
    """The key check for a bare request (the validation handler's: auth answers before a bad body does)."""
    check_key(request, await bearer(request))


def require_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """The dependency of every route that needs the key."""
    check_key(request, credentials)


def require_metrics_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """The dependency of ``/metrics``: the key check unless ``METRICS_AUTH=none``."""
    if request.app.state.settings.api.metrics_auth == "key":
        check_key(request, credentials)
