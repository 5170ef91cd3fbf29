"""The stream routes: proxies' stream events, the streams, their stats, and stopping one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.exceptions import RequestValidationError

from aceorch.api.deps import ServiceDep, require_key
from aceorch.api.schemas import (
    AUTH_ERRORS,
    ErrorPublic,
    StatSnapshotPublic,
    StreamEndedBody,
    StreamEndedPublic,
    StreamPublic,
    StreamStartedBody,
    StreamStoppedPublic,
)
from aceorch.models import StreamStart, parse_time

router = APIRouter(tags=["streams"])


@router.post("/events/stream_started", response_model=StreamPublic, dependencies=[Depends(require_key)],
             responses={**AUTH_ERRORS, 429: {"model": ErrorPublic, "description": "MAX_UNATTACHED_STREAMS streams "
                                             "on engines aceorch does not manage are started (with Retry-After)"}})
async def stream_started(body: StreamStartedBody, service: ServiceDep) -> StreamPublic:
    """A proxy started a stream on an engine."""
    stream = await service.streams.started(StreamStart(
        engine_host=body.engine.host, engine_port=body.engine.port, key_type=body.stream.key_type,
        key=body.stream.key, playback_session_id=body.session.playback_session_id, stat_url=body.session.stat_url,
        command_url=body.session.command_url, is_live=bool(body.session.is_live), container_id=body.container_id,
        labels=body.labels,
    ))
    return StreamPublic.model_validate(stream)


@router.post("/events/stream_ended", response_model=StreamEndedPublic, dependencies=[Depends(require_key)],
             responses=AUTH_ERRORS)
async def stream_ended(body: StreamEndedBody, service: ServiceDep) -> StreamEndedPublic:
    """A proxy ended a stream. Idempotent."""
    updated, stream = await service.streams.ended(body.container_id, body.stream_id, body.reason)
    return StreamEndedPublic(updated=updated, stream=StreamPublic.model_validate(stream) if stream else None)


@router.get("/streams", response_model=list[StreamPublic], dependencies=[Depends(require_key)],
            responses=AUTH_ERRORS)
async def read_streams(
    service: ServiceDep,
    status: Literal["started", "ended"] | None = None,
    container_id: str | None = None,
) -> list[StreamPublic]:
    """Streams, ordered by ``started_at``."""
    return [StreamPublic.model_validate(s) for s in service.streams.matching(status=status, container_id=container_id)]


def _since(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        return parse_time(since)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "datetime_parsing", "loc": ("query", "since"), "msg": str(exc), "input": since}]
        ) from None


@router.get("/streams/{stream_id}/stats", response_model=list[StatSnapshotPublic],
            dependencies=[Depends(require_key)], responses=AUTH_ERRORS)
async def read_stream_stats(
    stream_id: str, service: ServiceDep, since: Annotated[str | None, Query()] = None
) -> list[StatSnapshotPublic]:
    """Stat snapshots of one stream, oldest first."""
    return [StatSnapshotPublic.model_validate(s) for s in await service.streams.stats(stream_id, _since(since))]


@router.delete("/streams/{stream_id}", response_model=StreamStoppedPublic, dependencies=[Depends(require_key)],
               responses={**AUTH_ERRORS, 404: {"model": ErrorPublic, "description": "stream not found"}})
async def delete_stream(stream_id: str, service: ServiceDep) -> StreamStoppedPublic:
    """Stop a started stream through its engine's command_url, and end it."""
    stream = service.streams.get(stream_id)
    if stream is None:
        raise HTTPException(404, "stream not found")
    stopped = await service.streams.stop(stream)
    return StreamStoppedPublic(stopped=stopped, stream=StreamPublic.model_validate(stream))
