"""The proxy's Prometheus metrics: a collector that reads the hub's live state at scrape time.

Nothing is counted twice: the hub keeps the totals (bytes, lags, stalls, failovers) of the sessions that ended
beside the live ones, and :class:`ProxyCollector` only reads them, so its counters never go back when a session
ends. The names share the orchestrator's ``orch_`` prefix (one prefix for everything aceorch exports) with
``proxy_`` after it; embedded, the collector is registered in the orchestrator's registry and served by its
``/metrics``; standalone (``aceorch proxy``), :func:`proxy_registry` builds a registry of its own, served by
:data:`router`'s ``/metrics`` with the same key rule as ``/proxy/streams`` (unless METRICS_AUTH=none).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from aceorch.proxy.debug import LAGGING_WINDOW_S
from aceorch.proxy.hub import Hub
from aceorch.proxy.routes import _key_refusal

__all__ = ["ProxyCollector", "proxy_registry", "router", "COUNTERS", "GAUGES", "DELIVERY_DELAY"]

#: Counter name (without ``_total``, which the client adds) -> (the hub's ``status()`` key, help text).
COUNTERS: dict[str, tuple[str, str]] = {
    "orch_proxy_bytes_received": ("bytes_in", "bytes read from engines, in bytes"),
    "orch_proxy_bytes_sent": ("bytes_out", "bytes written to viewers, in bytes"),
    "orch_proxy_viewer_lags": ("lagged", "times a viewer fell further behind than the buffer holds and was moved "
                                         "to the live edge"),
    "orch_proxy_viewers_stalled": ("stalled", "viewers disconnected for accepting nothing for "
                                              "PROXY_CLIENT_STALL_S"),
    "orch_proxy_upstream_reconnects": ("reconnects", "times a stream asked its engine again after a stall or drop"),
    "orch_proxy_upstream_failovers": ("failovers", "times a stream moved to another engine"),
    "orch_proxy_streams_started": ("sessions_started", "engine sessions started (one per channel being watched)"),
    "orch_proxy_streams_ended": ("sessions_ended", "engine sessions ended"),
    "orch_proxy_stream_start_failures": ("start_failures", "streams whose first viewers got an error (502, 503)"),
    "orch_proxy_viewers_joined": ("viewers_total", "viewers that got a stream's first bytes"),
}

#: Gauge name -> help text.
GAUGES: dict[str, str] = {
    "orch_proxy_streams": "live streams (engine sessions) of the proxy",
    "orch_proxy_viewers": "connected viewers",
    "orch_proxy_viewers_lagging": f"connected viewers moved to the live edge within the last {LAGGING_WINDOW_S:g} s",
    "orch_proxy_buffer_bytes": "bytes held in the streams' fan-out buffers",
}

#: The delivery-delay histogram (upstream read to client write), exported when the hub keeps one.
DELIVERY_DELAY = "orch_proxy_delivery_delay_seconds"


def _cumulative(bounds: Sequence[float], counts: Sequence[int], count: int) -> list[tuple[str, float]]:
    """Prometheus buckets (``le``, cumulative count) from per-bucket counts; the last one is ``+Inf`` = ``count``."""
    out: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip(bounds, counts, strict=False):
        running += n
        out.append((repr(float(bound)), float(running)))
    out.append(("+Inf", float(count)))
    return out


class ProxyCollector(Collector):
    """The hub's streams, viewers and totals as Prometheus metrics, read at each scrape."""

    def __init__(self, hub: Hub, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._hub = hub
        self._mono = monotonic

    def describe(self) -> Iterable[Metric]:
        """The metric families (no samples), so that registering does not read the hub."""
        for name, text in GAUGES.items():
            yield GaugeMetricFamily(name, text)
        for name, (_, text) in COUNTERS.items():
            yield CounterMetricFamily(name, text)
        yield HistogramMetricFamily(DELIVERY_DELAY, "time from an engine read to the viewer's write, in seconds")

    def collect(self) -> Iterator[Metric]:
        """One sample per metric from the hub's current state."""
        hub = self._hub
        status = hub.status()
        live = list(hub.sessions.values())
        now = self._mono()
        lagging = sum(1 for s in live for v in s.viewers
                      if v.last_lag is not None and now - v.last_lag <= LAGGING_WINDOW_S)
        values: dict[str, float] = {
            "orch_proxy_streams": status["streams"],
            "orch_proxy_viewers": status["viewers"],
            "orch_proxy_viewers_lagging": lagging,
            "orch_proxy_buffer_bytes": sum(s.buffer.size for s in live),
        }
        for name, text in GAUGES.items():
            yield GaugeMetricFamily(name, text, value=values[name])
        for name, (key, text) in COUNTERS.items():
            yield CounterMetricFamily(name, text, value=status[key])
        delay = getattr(hub, "delivery_delay", None)
        if delay is not None:
            yield self._delay(delay)

    @staticmethod
    def _delay(h: Any) -> Metric:
        return HistogramMetricFamily(
            DELIVERY_DELAY, "time from an engine read to the viewer's write, in seconds",
            buckets=_cumulative(list(h.buckets), list(h.counts), int(h.count)), sum_value=float(h.sum),
        )


def proxy_registry(hub: Hub) -> CollectorRegistry:
    """The standalone proxy's registry: the proxy's metrics only."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ProxyCollector(hub))
    return registry


router = APIRouter(tags=["proxy"])


@router.get("/metrics", response_class=Response, summary="The proxy's Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "the Prometheus text exposition format"},
                       401: {"description": "key missing"}, 403: {"description": "wrong key"}})
async def metrics(request: Request) -> Response:
    """The proxy's metrics in the Prometheus text format (the API key as a bearer, unless METRICS_AUTH=none)."""
    if request.app.state.settings.api.metrics_auth == "key":
        refusal = _key_refusal(request)
        if refusal is not None:
            return refusal
    registry: CollectorRegistry = request.app.state.proxy_metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
