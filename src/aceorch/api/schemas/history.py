"""The response models of the history and the event log (``/history``, ``/events``; ``/events/stream`` sends
:class:`EventPublic` as SSE data)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from aceorch.api.schemas.responses import Time

__all__ = [
    "EventPublic",
    "EventPagePublic",
    "HistorySamplePublic",
    "HistoryProvisionPublic",
    "HistoryOutagePublic",
    "HistoryStressPublic",
    "HistoryEnginePublic",
    "HistoryPublic",
]


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class EventPublic(_Public):
    """One event of the log: a stress event, an engine change, a stream change or a VPN change."""

    #: Rising id: the SSE ``id:`` and the ``cursor`` of the next page.
    id: int
    ts: Time
    type: str
    #: What happened: the stress event's type; started, start_failed, stopped, vanished, reaped or health for
    #: engines; started or ended for streams; connected or disconnected for the VPN.
    action: str
    severity: str | None
    #: The engine's container id, when the event is about one.
    engine: str | None
    stream: str | None
    message: str
    data: dict[str, Any]


class EventPagePublic(_Public):
    """A page of the event log, oldest first; ``cursor`` fetches the next page (null: none yet)."""

    events: list[EventPublic]
    cursor: int | None
    #: The newest event's id in the whole log (0: none yet).
    last_id: int


class HistorySamplePublic(_Public):
    """One 10 s sample: engines by health, VPN connected (null: no VPN), started streams, proxy viewers."""

    ts: Time
    engines: dict[str, int]
    total: int
    vpn: bool | None
    streams: int
    viewers: int | None


class HistoryProvisionPublic(_Public):
    """One engine start: when it ended, how long it took, whether it succeeded and was slow."""

    ts: Time
    duration_ms: float
    ok: bool
    slow: bool
    kind: str
    container_id: str | None
    container_name: str | None
    code: str | None


class HistoryOutagePublic(_Public):
    """A period the VPN was not connected (``end`` null: still down)."""

    start: Time
    end: Time | None
    vpn: str | None


class HistoryStressPublic(_Public):
    """A stress event, as a chart marker."""

    ts: Time
    event_type: str
    severity: str | None
    description: str


class HistoryEnginePublic(_Public):
    """An engine this process started: its image, start time and start duration."""

    container_id: str
    image: str | None
    started_at: Time
    start_duration_ms: float


class HistoryPublic(_Public):
    """The last ``range_s`` seconds of history, for the panel's charts."""

    now: Time
    range_s: float
    interval_s: float
    slow_threshold_ms: float
    samples: list[HistorySamplePublic]
    provisions: list[HistoryProvisionPublic]
    vpn_outages: list[HistoryOutagePublic]
    stress: list[HistoryStressPublic]
    engines: list[HistoryEnginePublic]
