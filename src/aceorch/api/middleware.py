"""The API's pure ASGI middleware: request ids, the request guards, per-request timing, and the last-resort 500.

The guards answer before any route runs, in this order:

- 413 when ``Content-Length`` or the body actually received (chunked included) passes 1 MiB;
- 415 when a request that changes something (any method but GET, HEAD, OPTIONS) carries a ``Content-Type`` that
  is not JSON: only ``application/json`` bodies, which a browser cannot send across origins without a preflight;
- 403 when such a request comes from a web page of another origin: its ``Origin`` is neither the request's own host
  nor listed in ``CORS_ORIGINS`` (a body-less POST needs no preflight either);
- 415 when such a request carries a body without a ``Content-Type``. A request with no body and no
  ``Content-Type`` (``POST /scale/3``) passes;
- 408 when the body has not arrived within ``REQUEST_BODY_TIMEOUT_S``.

The body is read here, bounded in size and time, and replayed to the app.
"""

from __future__ import annotations

import asyncio
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

__all__ = ["RequestContextMiddleware", "pick_request_id", "is_json_type", "same_or_listed_origin", "MAX_BODY"]

logger = logging.getLogger("aceorch.api")

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
#: The largest request body, in bytes.
MAX_BODY = 1024 * 1024
#: Methods that only read: no origin or body-type check.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The header that ends the connection after an answer given before the body was read whole.
CLOSE = [(b"connection", b"close")]
JSON_TYPE = re.compile(r"^application/(?:[a-z0-9.+-]+\+)?json$")


def is_json_type(content_type: str) -> bool:
    """Whether a ``Content-Type`` value is JSON (``application/json``, ``application/x+json``; parameters allowed)."""
    return bool(JSON_TYPE.match(content_type.split(";", 1)[0].strip().lower()))


def same_or_listed_origin(origin: str, host: str | None, allowed: frozenset[str]) -> bool:
    """Whether a browser's ``Origin`` may change things: the request's own host, or one of ``CORS_ORIGINS``."""
    origin = origin.strip().lower().rstrip("/")
    if origin in allowed:
        return True
    _, sep, netloc = origin.partition("://")
    return bool(sep) and host is not None and netloc == host.strip().lower()


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
    """Request and trace ids (echoed as ``X-Request-ID``), the guards above, a traceback-free 500, request timing."""

    def __init__(
        self,
        app: ASGIApp,
        record: Callable[..., None],
        *,
        body_timeout_s: float = 10.0,
        cors_origins: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.record = record
        self.body_timeout_s = body_timeout_s
        self.cors_origins = frozenset(o.strip().lower().rstrip("/") for o in cors_origins)

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
        method = str(scope.get("method", "GET")).upper()
        try:
            if length is not None and length.isdigit() and int(length) > MAX_BODY:
                await reply(413, {"detail": "request body too large"})
                return
            mutating = method not in SAFE_METHODS
            content_type = headers.get("content-type")
            origin = headers.get("origin")
            if mutating and content_type is not None and not is_json_type(content_type):
                await reply(415, {"detail": f"unsupported Content-Type {content_type!r}: send the body as JSON "
                                            "with the header 'Content-Type: application/json'"})
                return
            if mutating and origin is not None and not same_or_listed_origin(origin, headers.get("host"),
                                                                              self.cors_origins):
                await reply(403, {"detail": f"cross-origin request refused: Origin {origin!r} is neither this "
                                            "host nor listed in CORS_ORIGINS"})
                return
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    body, first = await _read_body(receive)
            except TimeoutError:
                await reply(408, {"detail": f"request body not received within {self.body_timeout_s:g} s"}, CLOSE)
                return
            except _TooLarge:
                await reply(413, {"detail": "request body too large"}, CLOSE)
                return
            if first is not None and first["type"] == "http.disconnect":
                return
            if mutating and body and content_type is None:
                await reply(415, {"detail": "missing Content-Type: send the body as JSON with the header "
                                            "'Content-Type: application/json'"})
                return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            try:
                await self.app(scope, replay, send_wrapper)
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


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole request body (at most :data:`MAX_BODY` bytes), and the disconnect message if the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None
