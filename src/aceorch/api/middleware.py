"""The API's pure ASGI middleware: request ids, the 1 MiB body limit, per-request timing, and the last-resort 500."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import traceback
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aceorch.aiokits import request_id_var, trace_id_var

__all__ = ["RequestContextMiddleware", "pick_request_id"]

logger = logging.getLogger("aceorch.api")

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
MAX_BODY = 1024 * 1024


def pick_request_id(headers: dict[str, str]) -> tuple[str, str | None]:
    """The request's (request id, trace id).

    The trace id is the W3C ``traceparent``'s, when valid and not all zeros. The request id is a given
    ``X-Request-ID`` of 1-128 printable ASCII characters, else the trace id, else 32 random hex digits.
    """
    trace_id: str | None = None
    tp = headers.get("traceparent", "").strip().lower()
    m = TRACEPARENT.match(tp)
    if m and m.group(1) != "0" * 32 and m.group(2) != "0" * 16:
        trace_id = m.group(1)
    given = headers.get("x-request-id")
    if given is not None and 1 <= len(given) <= 128 and all(33 <= ord(c) <= 126 for c in given):
        return given, trace_id
    if trace_id:
        return trace_id, trace_id
    return secrets.token_hex(16), trace_id


class RequestContextMiddleware:
    """Request and trace ids (echoed as ``X-Request-ID``), 413 past 1 MiB, a traceback-free 500, request timing."""

    def __init__(self, app: ASGIApp, record: Callable[..., None]) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id, trace_id = pick_request_id(headers)
        rid_token = request_id_var.set(request_id)
        tid_token = trace_id_var.set(trace_id)
        begin = time.perf_counter()
        status_holder: dict[str, Any] = {"status": None, "started": False}
        rid_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                hdrs = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                hdrs.append(rid_header)
                message = {**message, "headers": hdrs}
            await send(message)

        async def reply(status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None) -> None:
            data = json.dumps(body).encode()
            await send_wrapper({"type": "http.response.start", "status": status,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(data)).encode()), *(extra or [])]})
            await send_wrapper({"type": "http.response.body", "body": data})

        length = headers.get("content-length")
        try:
            if length is not None and length.isdigit() and int(length) > MAX_BODY:
                await reply(413, {"detail": "request body too large"})
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > MAX_BODY:
                        raise _TooLarge()
                return message

            try:
                await self.app(scope, limited_receive, send_wrapper)
            except _TooLarge:
                if not status_holder["started"]:
                    await reply(413, {"detail": "request body too large"})
            except Exception as exc:  # noqa: BLE001 - the last resort: never a traceback to the client
                logger.exception("unhandled error (request id %s)", request_id)
                self.record("errors", component="api", operation=scope.get("path"), error_type=type(exc).__name__,
                            error_message=str(exc), traceback="".join(traceback.format_exception(exc)))
                if not status_holder["started"]:
                    await reply(500, {"detail": f"internal error (request id {request_id})"})
        finally:
            route = scope.get("route")
            self.record(
                "performance",
                operation="api_request",
                kind="api",
                method=scope.get("method"),
                route=getattr(route, "path", None) or scope.get("path"),
                status=status_holder["status"],
                duration_ms=(time.perf_counter() - begin) * 1000,
                success=(status_holder["status"] or 500) < 500,
            )
            request_id_var.reset(rid_token)
            trace_id_var.reset(tid_token)


class _TooLarge(Exception):
    """The body grew past the limit while it was read."""
