"""The shapes of the proxy's JSON answers (``/ace/status``, ``/proxy/streams``), as OpenAPI shows them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ProxyStatusPublic", "ProxyEnginePublic", "ProxyStreamPublic"]


class ProxyStatusPublic(BaseModel):
    """``{"status": "ok"}`` and the proxy's counters since it started (bytes are totals, ended streams included)."""

    model_config = ConfigDict(extra="forbid")

    status: str
    streams: int
    viewers: int
    bytes_in: int
    bytes_out: int
    lagged: int
    stalled: int
    reconnects: int
    failovers: int
    sessions_started: int
    sessions_ended: int
    viewers_total: int
    start_failures: int
    #: median and 99th percentile of the time from an engine read to a viewer's completed write, in milliseconds
    #: (interpolated in fixed buckets; null before the first write)
    delivery_delay_p50_ms: float | None
    delivery_delay_p99_ms: float | None


class ProxyEnginePublic(BaseModel):
    """The engine serving a proxy stream."""

    container_id: str
    container_name: str
    host: str
    port: int


class ProxyStreamPublic(BaseModel):
    """One live proxy stream: key, engine, viewers, bytes, start time, upstream state, lags and gaps."""

    key: str
    key_type: str
    stream_id: str | None
    engine: ProxyEnginePublic | None
    clients: int
    clients_total: int
    bytes_in: int
    bytes_out: int
    buffer_bytes: int
    started_at: str
    #: starting, streaming, reconnecting, failover or stopped
    upstream_state: str
    reconnects: int
    failovers: int
    #: every gap the viewers saw while the stream moved or reconnected, in milliseconds
    gaps_ms: list[float]
    lagged: int
    stalled: int
