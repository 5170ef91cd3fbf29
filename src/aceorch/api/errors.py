"""The API's exception handlers: they turn aceorch's errors into HTTP answers and decide status and ``Retry-After``.

=========================  ======  ==============================================
error                      status  Retry-After
=========================  ======  ==============================================
ProvisioningBlocked        503     the recovery estimate (at least 1 s), else 30
VpnFailure                 503     the recovery estimate (at least 1 s), else 30
ImageMissing               400     -
InputRejected              422     -
other ProvisioningRejected 409     -
other ProvisioningFailed   500     - (ImageUnavailable: code image_not_found)
RuntimeUnavailable         503     10
ContainerNotFound          404     -
TooManyStreams             429     seconds until the oldest such stream expires
request validation         422     - (401/403 first when the route needs the key)
HTTPException 503          503     30 unless the route set one
=========================  ======  ==============================================
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from aceorch.api.deps import check_auth, require_key
from aceorch.errors import (
    ContainerNotFound,
    ImageMissing,
    InputRejected,
    ProvisioningBlocked,
    ProvisioningError,
    ProvisioningRejected,
    RuntimeUnavailable,
    TooManyStreams,
    VpnFailure,
)

__all__ = ["register_exception_handlers", "provisioning_status", "retry_after"]

#: Retry-After of a 503 whose error gives no recovery estimate.
DEFAULT_RETRY_AFTER_S = 30


def provisioning_status(exc: ProvisioningError) -> int:
    """The HTTP status of a provisioning error."""
    if isinstance(exc, (ProvisioningBlocked, VpnFailure)):
        return 503
    if isinstance(exc, ImageMissing):
        return 400
    if isinstance(exc, InputRejected):
        return 422
    if isinstance(exc, ProvisioningRejected):
        return 409
    return 500


def retry_after(exc: ProvisioningError) -> int | None:
    """Seconds for ``Retry-After`` (503 answers only), from the error's recovery estimate."""
    if provisioning_status(exc) != 503:
        return None
    eta = exc.recovery_eta_seconds
    return max(1, eta) if eta is not None else DEFAULT_RETRY_AFTER_S


def provisioning_body(exc: ProvisioningError) -> dict[str, Any]:
    """The ProvisioningError body under ``detail``."""
    return {
        "error": exc.error,
        "code": exc.code,
        "message": exc.message,
        "recovery_eta_seconds": exc.recovery_eta_seconds,
        "can_retry": exc.can_retry,
        "should_wait": exc.should_wait,
    }


def _needs_key(request: Request) -> bool:
    """Whether the request's route needs the API key."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return False
    return any(dep.call is require_key for dep in route.dependant.dependencies)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no inf or NaN: the refused input is echoed as text
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


async def provisioning_error(request: Request, exc: Exception) -> JSONResponse:
    """A provisioning error: its body under ``detail``, its status, ``Retry-After`` on a 503."""
    assert isinstance(exc, ProvisioningError)
    headers: dict[str, str] = {}
    retry = retry_after(exc)
    if retry is not None:
        headers["Retry-After"] = str(retry)
    return JSONResponse({"detail": provisioning_body(exc)}, status_code=provisioning_status(exc), headers=headers)


async def runtime_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The runtime does not answer: 503, retry in 10 s."""
    return JSONResponse({"detail": "container runtime unavailable"}, status_code=503, headers={"Retry-After": "10"})


async def container_not_found(request: Request, exc: Exception) -> JSONResponse:
    """No such managed container: 404."""
    return JSONResponse({"detail": "container not found"}, status_code=404)


async def too_many_streams(request: Request, exc: Exception) -> JSONResponse:
    """The cap on streams of unmanaged engines is reached: 429, retry when the oldest one expires."""
    assert isinstance(exc, TooManyStreams)
    return JSONResponse({"detail": exc.message}, status_code=429,
                        headers={"Retry-After": str(max(1, exc.retry_after_s))})


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with the validation errors; a route that needs the key answers 401/403 first."""
    assert isinstance(exc, RequestValidationError)
    if _needs_key(request):
        try:
            await check_auth(request)
        except HTTPException as auth:
            return JSONResponse({"detail": auth.detail}, status_code=auth.status_code, headers=auth.headers)
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        item = {k: err[k] for k in ("type", "loc", "msg", "input") if k in err}
        if "ctx" in err:
            item["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
        errors.append(item)
    return JSONResponse({"detail": _jsonable(errors)}, status_code=422)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """An HTTPException as ``{"detail": ...}``; a 503 gets ``Retry-After: 30`` unless it carries one."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's answer to a body it cannot decode at all (e.g. invalid UTF-8): a validation error here.
        return await validation_error(request, RequestValidationError([{
            "type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "input": None,
            "ctx": {"error": "the body is not valid UTF-8 JSON"},
        }]))
    headers = dict(exc.headers or {})
    if exc.status_code == 503 and "Retry-After" not in headers:
        headers["Retry-After"] = str(DEFAULT_RETRY_AFTER_S)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def register_exception_handlers(app: FastAPI) -> None:
    """Install every handler above on ``app``."""
    app.add_exception_handler(ProvisioningError, provisioning_error)
    app.add_exception_handler(RuntimeUnavailable, runtime_unavailable)
    app.add_exception_handler(ContainerNotFound, container_not_found)
    app.add_exception_handler(TooManyStreams, too_many_streams)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
