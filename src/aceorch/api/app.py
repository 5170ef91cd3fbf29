"""``create_app(settings)``: the FastAPI application whose lifespan owns the :class:`~aceorch.service.core.Service`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from aceorch import __version__
from aceorch.api.deps import check_auth, require_key
from aceorch.api.middleware import RequestContextMiddleware
from aceorch.api.routes import containers, debug, engines, provision, service, status, streams
from aceorch.config import Settings
from aceorch.debuglog.writer import DebugLog
from aceorch.errors import ContainerNotFound, ProvisioningError, RuntimeUnavailable
from aceorch.runtime.base import Runtime
from aceorch.runtime.factory import make_runtime
from aceorch.service.core import Service
from aceorch.store import make_store
from aceorch.store.base import Store

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def _needs_key(request: Request) -> bool:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return False
    return any(dep.call is require_key for dep in route.dependant.dependencies)


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    store: Store | None = None,
    debuglog: DebugLog | None = None,
) -> FastAPI:
    """Build the app. Settings are built once by the caller; runtime and store may be injected (tests)."""
    log = debuglog or DebugLog(settings, version=__version__)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or await make_runtime(settings)
        st = store or make_store(settings.db_url)
        svc = Service(settings, runtime=rt, store=st, debuglog=log)
        app.state.service = svc
        await svc.start()
        try:
            yield
        finally:
            await svc.aclose()

    app = FastAPI(
        title="aceorch",
        version=__version__,
        description="An orchestrator for AceStream engines.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.debuglog = log

    @app.exception_handler(ProvisioningError)
    async def provisioning_error(request: Request, exc: ProvisioningError) -> JSONResponse:
        headers: dict[str, str] = {}
        retry = exc.retry_after()
        if retry is not None:
            headers["Retry-After"] = str(retry)
        return JSONResponse({"detail": exc.detail()}, status_code=exc.status, headers=headers)

    @app.exception_handler(RuntimeUnavailable)
    async def runtime_unavailable(request: Request, exc: RuntimeUnavailable) -> JSONResponse:
        return JSONResponse({"detail": "container runtime unavailable"}, status_code=503,
                            headers={"Retry-After": "10"})

    @app.exception_handler(ContainerNotFound)
    async def container_not_found(request: Request, exc: ContainerNotFound) -> JSONResponse:
        return JSONResponse({"detail": "container not found"}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if _needs_key(request):
            try:
                check_auth(request)
            except HTTPException as auth:
                return JSONResponse({"detail": auth.detail}, status_code=auth.status_code,
                                    headers=auth.headers)
        errors: list[dict[str, Any]] = []
        for err in exc.errors():
            item = {k: err[k] for k in ("type", "loc", "msg", "input") if k in err}
            if "ctx" in err:
                item["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
            errors.append(item)
        return JSONResponse({"detail": _jsonable(errors)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer to a body it cannot decode at all (e.g. invalid UTF-8): a validation error here.
            return await validation_error(request, RequestValidationError([{
                "type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "input": None,
                "ctx": {"error": "the body is not valid UTF-8 JSON"},
            }]))
        headers = dict(exc.headers or {})
        if exc.status_code == 503 and "Retry-After" not in headers:
            headers["Retry-After"] = "30"
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    for module in (provision, containers, engines, streams, status, debug, service):
        app.include_router(module.router)

    from aceorch.dashboard import mount_dashboard

    mount_dashboard(app)

    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        allow_credentials=False,
        expose_headers=["X-Request-ID", "Retry-After"],
    )
    app.add_middleware(RequestContextMiddleware, record=log.log)
    return app


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
