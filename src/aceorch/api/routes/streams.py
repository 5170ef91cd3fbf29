"""Stream events from proxies, streams and their stats (api.md §5, §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError

from aceorch.api.deps import ServiceDep, require_key
from aceorch.api.schemas import StreamEndedBody, StreamStartedBody
from aceorch.models import parse_time

router = APIRouter(tags=["streams"])


@router.post("/events/stream_started", dependencies=[Depends(require_key)])
async def stream_started(body: StreamStartedBody, service: ServiceDep) -> dict[str, Any]:
    """A proxy started a stream on an engine."""
    stream = await service.stream_started(body.model_dump())
    return stream.public()


@router.post("/events/stream_ended", dependencies=[Depends(require_key)])
async def stream_ended(body: StreamEndedBody, service: ServiceDep) -> dict[str, Any]:
    """A proxy ended a stream. Idempotent."""
    updated, stream = await service.stream_ended(body.container_id, body.stream_id, body.reason)
    return {"updated": updated, "stream": stream.public() if stream else None}


@router.get("/streams")
async def read_streams(
    service: ServiceDep,
    status: Literal["started", "ended"] | None = None,
    container_id: str | None = None,
) -> list[dict[str, Any]]:
    """Streams, ordered by ``started_at``."""
    out = [
        s for s in service.streams.values()
        if (status is None or s.status == status) and (container_id is None or s.container_id == container_id)
    ]
    return [s.public() for s in sorted(out, key=lambda s: s.started_at)]


def _since(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        return parse_time(since)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "datetime_parsing", "loc": ("query", "since"), "msg": str(exc), "input": since}]
        ) from None


@router.get("/streams/{stream_id}/stats")
async def read_stream_stats(
    stream_id: str, service: ServiceDep, since: Annotated[str | None, Query()] = None
) -> list[dict[str, Any]]:
    """Stat snapshots of one stream, oldest first."""
    return [s.public() for s in await service.stream_stats(stream_id, _since(since))]


@router.delete("/streams/{stream_id}", dependencies=[Depends(require_key)],
               responses={404: {"description": "stream not found"}})
async def delete_stream(stream_id: str, service: ServiceDep) -> dict[str, Any]:
    """Stop a started stream through its engine's command_url, and end it."""
    stream = service.streams.get(stream_id)
    if stream is None:
        raise HTTPException(404, "stream not found")
    stopped = await service.stop_stream(stream)
    return {"stopped": stopped, "stream": stream.public()}
