"""``create_app(settings)``: the FastAPI application whose lifespan owns the :class:`~aceorch.service.core.Service`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from aceorch import __version__
from aceorch.api.errors import register_exception_handlers
from aceorch.api.middleware import RequestContextMiddleware
from aceorch.api.policy import cors_origins
from aceorch.api.routes import containers, debug, engines, events, provision, service, status, streams
from aceorch.config import Settings
from aceorch.debuglog.writer import DebugLog
from aceorch.proxy import hls_routes as proxy_hls_routes
from aceorch.proxy import routes as proxy_routes
from aceorch.proxy.debug import ProxyDebug
from aceorch.proxy.hub import Hub, embedded_record
from aceorch.proxy.metrics import ProxyCollector
from aceorch.runtime.base import Runtime
from aceorch.runtime.factory import make_runtime
from aceorch.service.core import Service
from aceorch.service.proxy_link import ProxyLink
from aceorch.store import make_store
from aceorch.store.base import Store

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


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
        st = store or make_store(settings.api.db_url)
        svc = Service(settings, runtime=rt, store=st, debuglog=log)
        app.state.service = svc
        await svc.start()
        # The embedded proxy writes into this session; its stress events go through the service's stress monitor.
        proxy_record = ProxyDebug(embedded_record(log.log, stress=svc.debug.adopt_stress))
        app.state.proxy = Hub(settings.proxy, client=ProxyLink(svc), record=proxy_record)
        svc.viewers = lambda: int(app.state.proxy.status()["viewers"])
        svc.metrics.registry.register(ProxyCollector(app.state.proxy))
        try:
            yield
        finally:
            await app.state.proxy.aclose()
            await svc.aclose()

    app = FastAPI(
        title="aceorch",
        version=__version__,
        description="An orchestrator for AceStream engines.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.debuglog = log

    register_exception_handlers(app)

    for module in (provision, containers, engines, streams, events, status, debug, service):
        app.include_router(module.router)
    app.include_router(proxy_routes.router)
    app.include_router(proxy_hls_routes.router)

    from aceorch.dashboard import mount_dashboard

    mount_dashboard(app)

    # The last middleware added is the outermost: CORS (when on) wraps the guards, so that a listed origin's
    # page also reads their refusals.
    app.add_middleware(
        RequestContextMiddleware, record=log.log, body_timeout_s=settings.api.request_body_timeout_s,
        cors_origins=cors_origins(settings),
    )
    origins = sorted(cors_origins(settings))
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "traceparent"],
            allow_credentials=False,
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    return app

