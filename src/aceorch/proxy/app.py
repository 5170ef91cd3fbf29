"""The standalone proxy's application: the proxy routes over an HTTP orchestrator client (``aceorch proxy``)."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aceorch import __version__
from aceorch.aiokits import request_id_var, trace_id_var
from aceorch.config import Settings
from aceorch.proxy import debug_routes, hls_routes, routes
from aceorch.proxy import metrics as proxy_metrics
from aceorch.proxy.client import OrchestratorClient
from aceorch.proxy.debug import ProxyDebug, standalone_log
from aceorch.proxy.http_client import HttpOrchestrator
from aceorch.proxy.hub import Hub

__all__ = ["create_proxy_app", "RequestIdMiddleware"]

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class RequestIdMiddleware:
    """Every request gets an id, set as the request's context and echoed in the answer: the client's
    ``X-Request-ID`` when printable and short, else its ``traceparent``'s trace id, else 32 new hex digits."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get(b"x-request-id", "")
        m = TRACEPARENT.match(headers.get(b"traceparent", "").strip().lower())
        trace = m.group(1) if m and m.group(1) != "0" * 32 else None
        ok = 1 <= len(given) <= 128 and all(33 <= ord(c) <= 126 for c in given)
        rid = given if ok else (trace or secrets.token_hex(16))
        token = request_id_var.set(rid)
        trace_token = trace_id_var.set(trace)

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, tagged)
        finally:
            trace_id_var.reset(trace_token)
            request_id_var.reset(token)


def create_proxy_app(settings: Settings, orchestrator_url: str,
                     client: OrchestratorClient | None = None) -> FastAPI:
    """The standalone proxy: ``/ace/getstream``, ``/ace/status``, ``/proxy/streams``, ``/debug/*`` and ``/healthz``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        orch = client or HttpOrchestrator(orchestrator_url, api_key=settings.api_key_value())
        log = standalone_log(settings, version=__version__)
        await asyncio.to_thread(log.start_from_env)
        app.state.debug_log = log
        app.state.proxy = Hub(settings.proxy, client=orch, record=ProxyDebug(log.log))
        app.state.proxy_metrics = proxy_metrics.proxy_registry(app.state.proxy)
        try:
            yield
        finally:
            try:
                await app.state.proxy.aclose()
                await orch.aclose()
            finally:
                await asyncio.to_thread(log.close)

    app = FastAPI(title="aceorch proxy", version=__version__, lifespan=lifespan,
                  description=f"The aceorch stream proxy, for the orchestrator at {orchestrator_url}.")
    app.state.settings = settings
    app.include_router(routes.router)
    app.include_router(hls_routes.router)
    app.include_router(debug_routes.router)
    app.include_router(proxy_metrics.router)

    @app.get("/healthz", summary="The proxy answers")
    async def healthz() -> dict[str, str]:
        """``{"status": "ok"}`` while the proxy runs."""
        return {"status": "ok"}

    app.add_middleware(RequestIdMiddleware)
    return app
