"""The live routes: ``GET /events/stream`` (Server-Sent Events), ``GET /events`` (the filtered, paged event log)
and ``GET /history`` (the in-memory history the panel charts).

``/events/stream`` needs the key like every read: the panel reads it with ``fetch()`` and the ``Authorization``
header (``EventSource`` cannot send headers), so that no key ever travels in a URL. Each event is one SSE
message: ``id:`` the event id, ``event:`` its type, ``data:`` the :class:`EventPublic` JSON. A reconnect with
``Last-Event-ID`` (or ``?after=``) first replays the events it missed that the log still holds. A comment line
every 15 s keeps proxies from closing an idle stream. The route is left out of OpenAPI: it never ends, which
schema-driven clients and fuzzers cannot handle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from aceorch.api.deps import ServiceDep, require_key
from aceorch.api.routes.streams import _since
from aceorch.api.schemas import AUTH_ERRORS
from aceorch.api.schemas.history import EventPagePublic, EventPublic, HistoryPublic
from aceorch.service.history import EVENT_TYPES, History

router = APIRouter(tags=["events"])

#: Seconds between keep-alive comments on an idle stream.
KEEPALIVE_S = 15.0
RANGES = {"15m": 900.0, "1h": 3600.0, "6h": 21600.0, "24h": 86400.0}

EventType = Literal["stress", "engine", "stream", "vpn"]


def sse_message(event: dict[str, object]) -> bytes:
    """One event as an SSE message (the data is one JSON line)."""
    data = EventPublic.model_validate(event).model_dump_json()
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {data}\n\n".encode()


async def event_stream(history: History, *, types: set[str] | None, after: int | None) -> AsyncIterator[bytes]:
    """The SSE body: missed events first, then each new one as it happens, until the service stops."""
    with history.subscribe() as queue:
        yield b"retry: 2000\n\n"
        if after is not None:
            for ev in history.events(types=types, after_id=after, limit=len(EVENT_TYPES) * 1000):
                yield sse_message(ev)
        yield b": live\n\n"
        while history.is_subscribed(queue):
            try:
                event = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if event is None:
                return
            if after is not None and int(event["id"]) <= after:
                continue
            if types and event["type"] not in types:
                continue
            yield sse_message(event)


@router.get("/events/stream", dependencies=[Depends(require_key)], include_in_schema=False)
async def events_stream(
    service: ServiceDep,
    type: Annotated[list[EventType] | None, Query()] = None,
    after: int | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-Sent Events: stress events, engine changes, stream changes and VPN changes as they happen."""
    if after is None and last_event_id and last_event_id.isdigit():
        after = int(last_event_id)
    body = event_stream(service.history, types=set(type) if type else None, after=after)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/events", response_model=EventPagePublic, dependencies=[Depends(require_key)], responses=AUTH_ERRORS)
async def events_log(
    service: ServiceDep,
    type: Annotated[list[EventType] | None, Query(description="only these types (repeat the parameter)")] = None,
    since: Annotated[str | None, Query(description="only events at or after this time (RFC 3339)")] = None,
    engine: Annotated[str | None, Query(description="only events about this engine (its id or a prefix)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, Query(ge=0, description="the previous page's cursor: events after it")] = None,
) -> EventPagePublic:
    """The last events (the log keeps the last 2000), oldest first, filtered and paged."""
    h = service.history
    events = h.events(types=set(type) if type else None, since=_since(since), engine=engine, after_id=cursor,
                      limit=limit)
    next_cursor = events[-1]["id"] if events else cursor
    return EventPagePublic(events=[EventPublic.model_validate(e) for e in events], cursor=next_cursor,
                           last_id=h.last_id)


@router.get("/history", response_model=HistoryPublic, dependencies=[Depends(require_key)], responses=AUTH_ERRORS)
async def history(
    service: ServiceDep,
    range: Annotated[Literal["15m", "1h", "6h", "24h"], Query(description="how far back")] = "1h",
) -> HistoryPublic:
    """Samples every 10 s (engines by health, VPN, streams, viewers), starts with durations, VPN outages and
    stress events of the range; and each engine's image, start time and start duration."""
    return HistoryPublic.model_validate(service.history.snapshot(RANGES[range]))
