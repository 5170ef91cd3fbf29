"""The proxy's debug mode: its record hook, its own session files when standalone, and its stress detectors.

Standalone (``aceorch proxy``), :func:`standalone_log` builds the orchestrator's writer
(:class:`~aceorch.debuglog.writer.DebugLog`, same masking, retention and session rules) over the proxy's own
categories (:data:`~aceorch.debuglog.records.PROXY_CATEGORIES`) in PROXY_DEBUG_LOG_DIR (default DEBUG_LOG_DIR).
Embedded, the same records go into the orchestrator's session, in the categories of the same names, marked
``component: "proxy"`` (:func:`aceorch.proxy.hub.embedded_record`); the stress detectors below run in both.

:class:`ProxyDebug` sits between the proxy's modules and either writer: it passes every record on and feeds the
stress detectors, which are stateful like the orchestrator's: the first sample that sees a condition writes a
``stress`` record, later ones are counted (``samples``), the first that sees it clear writes
``<event_type>_resolved`` with ``duration_ms``, ``samples`` and ``started_at``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aceorch.config import Settings
from aceorch.debuglog import records
from aceorch.debuglog.writer import DebugLog
from aceorch.models import format_time, utcnow

__all__ = [
    "ProxyDebug",
    "standalone_log",
    "mask_client",
    "SLOW_REQUEST_MS",
    "SLOW_SELECTION_MS",
    "LAGGING_RATIO",
    "LAGGING_WINDOW_S",
]

#: A viewer whose first byte took longer than this is a ``slow_request``.
SLOW_REQUEST_MS = 5000.0
#: An engine selection (engine list, choice, provisioning excluded) slower than this is ``slow_engine_selection``.
SLOW_SELECTION_MS = 2000.0
#: ``viewers_lagging``: more than this share of a stream's viewers were moved to the live edge …
LAGGING_RATIO = 0.10
#: … within this many seconds.
LAGGING_WINDOW_S = 60.0


def standalone_log(settings: Settings, *, version: str) -> DebugLog:
    """The standalone proxy's writer: the proxy's categories in PROXY_DEBUG_LOG_DIR (default DEBUG_LOG_DIR)."""
    folder = settings.proxy.proxy_debug_log_dir or settings.debug.debug_log_dir
    return DebugLog(settings, version=version, runtime_name="proxy", categories=records.PROXY_CATEGORIES,
                    log_dir=folder)


def mask_client(host: str) -> str:
    """An IPv4 client address masked to its /24 (``192.168.1.0/24``); other addresses as given."""
    parts = host.split(".")
    return ".".join(parts[:3] + ["0"]) + "/24" if len(parts) == 4 else host


@dataclass
class _Episode:
    started_mono: float
    started_at: str
    samples: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class ProxyDebug:
    """The proxy's record hook: every record goes to ``write``; the stress detectors watch them on the way."""

    def __init__(self, write: Callable[..., None], *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._write = write
        self._mono = monotonic
        self._episodes: dict[str, _Episode] = {}
        #: stream key -> (monotonic time, viewer request id) of recent lags.
        self._lags: dict[str, deque[tuple[float, str | None]]] = {}
        self._viewers: dict[str, int] = {}
        #: Every stress record written, newest last (tests and status read it).
        self.stress: deque[dict[str, Any]] = deque(maxlen=1000)

    # -- the hook -------------------------------------------------------------------------------------------
    def __call__(self, category: str, **fields: Any) -> None:
        """Record ``fields`` in ``category`` and let the detectors see them."""
        if category == "stress":
            self._stall(fields)
            return
        self._write(category, **fields)
        op = fields.get("operation")
        key = fields.get("stream_key")
        rid = fields.get("request_id")
        if category == "requests" and op == "first_byte_ready":
            self._threshold("slow_request", f"slow_request:{key}", fields.get("duration_ms"), SLOW_REQUEST_MS,
                            stream_key=key, request_id=rid)
        elif category == "engine_selection" and op == "select_engine":
            self._threshold("slow_engine_selection", "slow_engine_selection", fields.get("duration_ms"),
                            SLOW_SELECTION_MS, stream_key=key, request_id=rid)
        elif category == "streams" and op in ("upstream_gap", "stream_ended", "stream_started"):
            self._resolve(f"upstream_stall:{key}", stream_key=key)
        elif category == "clients":
            self._clients(op, key, rid, fields)

    # -- detectors ------------------------------------------------------------------------------------------
    def _threshold(self, event_type: str, ekey: str, value: object, limit: float, **extra: Any) -> None:
        if not isinstance(value, (int, float)):
            return
        if value > limit:
            self._fire(ekey, event_type, f"{event_type.replace('_', ' ')}: {value / 1000:.1f} s "
                       f"(threshold {limit / 1000:g} s)", duration_ms=round(float(value), 2), threshold_ms=limit,
                       **extra)
        else:
            self._resolve(ekey, **{k: v for k, v in extra.items() if k != "request_id"})

    def _stall(self, fields: dict[str, Any]) -> None:
        key = fields.get("stream_key")
        stall = fields.get("stall_s")
        self._fire(f"upstream_stall:{key}", "upstream_stall",
                   f"the engine sent nothing for {stall} s on stream {key}", stream_key=key,
                   container_id=fields.get("container_id"), stall_s=stall, request_id=fields.get("request_id"))

    def _clients(self, op: object, key: object, rid: object, fields: dict[str, Any]) -> None:
        skey = str(key)
        viewers = fields.get("viewers")
        if isinstance(viewers, int):
            self._viewers[skey] = viewers
        now = self._mono()
        lags = self._lags.setdefault(skey, deque())
        if op == "client_lagged":
            lags.append((now, rid if isinstance(rid, str) else None))
        while lags and now - lags[0][0] > LAGGING_WINDOW_S:
            lags.popleft()
        lagging = {r for _, r in lags}
        total = max(self._viewers.get(skey, 0), len(lagging), 1)
        ratio = len(lagging) / total
        ekey = f"viewers_lagging:{skey}"
        if lags and ratio > LAGGING_RATIO:
            self._fire(ekey, "viewers_lagging", f"{len(lagging)} of {total} viewers of stream {skey} lagged "
                       f"within {LAGGING_WINDOW_S:g} s", stream_key=skey, lagging=len(lagging), viewers=total,
                       window_s=LAGGING_WINDOW_S, request_ids=sorted(r for r in lagging if r))
        else:
            self._resolve(ekey, stream_key=skey)
        if op == "client_left" and fields.get("viewers") == 0:
            self._lags.pop(skey, None)
            self._viewers.pop(skey, None)

    def _fire(self, ekey: str, event_type: str, description: str, **extra: Any) -> None:
        episode = self._episodes.get(ekey)
        if episode is not None:
            episode.samples += 1
            return
        now = format_time(utcnow()) or ""
        self._episodes[ekey] = _Episode(self._mono(), now, extra={k: extra[k] for k in ("stream_key",)
                                                                    if k in extra})
        rec = {"event_type": event_type, "severity": records.PROXY_STRESS_EVENT_TYPES[event_type],
               "description": description, "state": "firing", **extra}
        self.stress.append(rec)
        self._write("stress", **rec)

    def _resolve(self, ekey: str, **extra: Any) -> None:
        episode = self._episodes.pop(ekey, None)
        if episode is None:
            return
        event_type = ekey.split(":", 1)[0]
        rec = {"event_type": event_type + records.RESOLVED_SUFFIX, "severity": "info",
               "description": f"{event_type.replace('_', ' ')} cleared", "state": "resolved",
               "duration_ms": round((self._mono() - episode.started_mono) * 1000, 2), "samples": episode.samples,
               "started_at": episode.started_at, **extra}
        self.stress.append(rec)
        self._write("stress", **rec)

    def active(self) -> list[str]:
        """The stress situations now firing (``event_type:stream`` keys)."""
        return sorted(self._episodes)


def request_fields(method: str, path: str, status: int, begin: float, sent: int, client: str,
                   user_agent: str | None, **extra: Any) -> dict[str, Any]:
    """The fields of one ``requests`` record (``viewer_request``): one per viewer request, when it ends."""
    return {"operation": "viewer_request", "method": method, "path": path, "status": status,
            "duration_ms": (time.perf_counter() - begin) * 1000, "bytes": sent, "client": client,
            "user_agent": user_agent, **extra}
