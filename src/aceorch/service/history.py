"""The in-memory history the dashboard charts, and the live event log behind ``/events`` and ``/events/stream``.

It owns three rings, all in memory and lost at restart:

- samples: one every :data:`SAMPLE_INTERVAL_S` for :data:`HISTORY_S` (engines by health, VPN state, streams,
  viewers);
- starts and VPN outages: every provision with its duration, and every VPN down period, for :data:`HISTORY_S`;
- events: the last :data:`EVENTS_MAX` stress events, engine changes, stream changes and VPN changes, each with a
  rising id (the SSE id and the paging cursor).

It is fed by :meth:`History.observe` (every service record passes through it: provisions, engine stops and
health changes, stream starts and ends, each VPN check) and :meth:`History.stress`; subscribers (the SSE
route) get each new event on an asyncio queue.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

__all__ = ["History", "SAMPLE_INTERVAL_S", "HISTORY_S", "EVENTS_MAX", "EVENT_TYPES"]

#: One sample every 10 s, kept for 24 h.
SAMPLE_INTERVAL_S = 10.0
HISTORY_S = 24 * 3600.0
#: How many events the log keeps.
EVENTS_MAX = 2000
#: The event types of the log.
EVENT_TYPES = ("stress", "engine", "stream", "vpn")
#: A subscriber that falls this many events behind is dropped (its stream ends; the browser reconnects).
QUEUE_MAX = 500

#: Service records that are engine changes: operation -> the event's action.
_ENGINE_OPS = {
    "start_acestream_success": "started",
    "start_container_success": "started",
    "start_acestream_failed": "start_failed",
    "start_container_failed": "start_failed",
    "stop_engine_success": "stopped",
    "engine_vanished": "vanished",
    "reap_container": "reaped",
    "status_transition": "health",
}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class History:
    """The rings, the event log and its subscribers for one service."""

    def __init__(
        self,
        *,
        slow_threshold_ms: float,
        clock: Callable[[], float] = time.time,
        events_max: int = EVENTS_MAX,
        sample_interval_s: float = SAMPLE_INTERVAL_S,
    ) -> None:
        self.slow_threshold_ms = slow_threshold_ms
        self.sample_interval_s = sample_interval_s
        self._clock = clock
        self._samples: deque[dict[str, Any]] = deque(maxlen=int(HISTORY_S / sample_interval_s))
        self._starts: deque[dict[str, Any]] = deque(maxlen=10_000)
        self._outages: deque[dict[str, Any]] = deque(maxlen=2_000)
        self._events: deque[dict[str, Any]] = deque(maxlen=events_max)
        self._engines: dict[str, dict[str, Any]] = {}
        self._images: dict[tuple[str, str | None], str] = {}
        self._last_image: str | None = None
        self._vpn: dict[str | None, bool] = {}
        self._seq = 0
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The current counts (the ``sample`` keywords); with it, each engine, stream or VPN change adds a sample
        #: at once, so that a chart's step sits where the change happened, not at the next 10 s tick.
        self.sampler: Callable[[], dict[str, Any]] | None = None

    # -- feeding ----------------------------------------------------------------------------------------------
    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop subscribers wait on (events recorded from another thread are handed to it)."""
        self._loop = loop

    def sample(self, *, engines: dict[str, int], vpn: bool | None, streams: int, viewers: int | None) -> None:
        """Add one sample (engines by health, VPN connected or None when off, started streams, proxy viewers).

        A sample less than a second after the last one replaces it (a burst of changes keeps one, the latest).
        """
        now = self._clock()
        if self._samples and now - self._samples[-1]["t"] < 1.0:
            self._samples.pop()
        self._samples.append({"ts": _iso(now), "t": now, "engines": dict(engines), "total": sum(engines.values()),
                              "vpn": vpn, "streams": streams, "viewers": viewers})

    def vpn_connected(self, connected: bool, name: str | None = None) -> None:
        """The VPN monitor's latest answer: a change opens or closes an outage and is an event."""
        was = self._vpn.get(name)
        if connected == was:
            return
        self._vpn[name] = connected
        now = self._clock()
        if not connected:
            self._outages.append({"start": _iso(now), "t": now, "end": None, "vpn": name})
        else:
            for outage in self._outages:
                if outage["end"] is None and outage["vpn"] == name:
                    outage["end"] = _iso(now)
        if was is None and connected:
            return  # the first answer of a healthy VPN is no change
        self._publish("vpn", "connected" if connected else "disconnected",
                      message=f"VPN {name + ' ' if name else ''}{'connected' if connected else 'disconnected'}",
                      data={"vpn": name, "connected": connected})

    def stress(self, event: dict[str, Any]) -> None:
        """A stress event from the stress monitor."""
        self._publish("stress", str(event.get("event_type")), severity=event.get("severity"),
                      engine=event.get("container_id"), message=str(event.get("description") or ""),
                      ts=event.get("timestamp"),
                      data={k: v for k, v in event.items() if k not in ("timestamp", "session_id")})

    def observe(self, category: str, fields: dict[str, Any]) -> None:
        """A service record: provisions, engine stops and health changes, and stream starts and ends are kept."""
        op = fields.get("operation")
        if category == "vpn" and op == "health_check" and isinstance(fields.get("connected"), bool):
            vpn = fields.get("vpn")
            self.vpn_connected(bool(fields["connected"]), str(vpn) if vpn else None)
            return
        if category == "provisioning" and op in ("start_acestream_begin", "start_container_begin"):
            image = fields.get("image")
            if isinstance(image, str):
                self._images[(str(fields.get("source")), fields.get("request_id"))] = image
                self._last_image = image
                if len(self._images) > 200:
                    self._images.pop(next(iter(self._images)))
            return
        if category == "streams" and op in ("stream_started", "stream_ended"):
            if fields.get("duplicate") or fields.get("found") is False:
                return
            action = "started" if op == "stream_started" else "ended"
            reason = f" ({fields['reason']})" if fields.get("reason") else ""
            self._publish("stream", action, engine=fields.get("container_id"), stream=fields.get("stream_id"),
                          message=f"stream {fields.get('stream_id')} {action}{reason}", data=dict(fields))
            return
        if category not in ("provisioning", "health") or op not in _ENGINE_OPS:
            return
        action = _ENGINE_OPS[str(op)]
        cid = fields.get("container_id")
        name = fields.get("container_name") or (str(cid)[:12] if cid else "")
        if op.startswith("start_"):
            self._start(op, fields)
        if action == "health":
            message = f"engine {name} {fields.get('from')} → {fields.get('to')}"
        elif action == "start_failed":
            message = f"a start failed: {fields.get('code')}: {fields.get('error')}"
        elif action == "started":
            message = f"engine {name} started in {float(fields.get('duration_ms') or 0) / 1000:.1f} s"
        else:
            message = f"engine {name} {action}" + (f" ({fields['reason']})" if fields.get("reason") else "")
        if action in ("stopped", "vanished", "reaped") and cid:
            self._engines.pop(str(cid), None)
        self._publish("engine", action, engine=cid, message=message, data=dict(fields))

    def _start(self, op: str, fields: dict[str, Any]) -> None:
        now = self._clock()
        ok = op.endswith("_success")
        kind = "acestream" if "acestream" in op else "generic"
        duration = float(fields.get("duration_ms") or 0.0)
        image = self._images.pop((str(fields.get("source")), fields.get("request_id")), None) or self._last_image
        cid = fields.get("container_id")
        self._starts.append({"ts": _iso(now), "t": now, "duration_ms": round(duration, 1), "ok": ok, "kind": kind,
                             "container_id": cid, "container_name": fields.get("container_name"),
                             "code": fields.get("code"), "slow": duration > self.slow_threshold_ms})
        if ok and cid:
            self._engines[str(cid)] = {"image": image, "started_at": _iso(now), "start_duration_ms": round(duration, 1)}

    def _publish(self, type_: str, action: str, *, message: str, data: dict[str, Any], engine: Any = None,
                 stream: Any = None, severity: Any = None, ts: Any = None) -> None:
        self._seq += 1
        now = self._clock()
        event = {"id": self._seq, "ts": ts if isinstance(ts, str) else _iso(now), "type": type_, "action": action,
                 "severity": severity, "engine": str(engine) if engine else None,
                 "stream": str(stream) if stream else None, "message": message, "data": _plain(data)}
        self._events.append(event)
        for queue in list(self._subscribers):
            self._hand(queue, event)
        if self.sampler is not None and type_ != "stress":
            self.sample(**self.sampler())

    def _hand(self, queue: asyncio.Queue[dict[str, Any] | None], event: dict[str, Any] | None) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is not None and running is not self._loop:
            self._loop.call_soon_threadsafe(self._put, queue, event)
        else:
            self._put(queue, event)

    def _put(self, queue: asyncio.Queue[dict[str, Any] | None], event: dict[str, Any] | None) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            self._subscribers.discard(queue)  # too slow: its stream ends and the client reconnects with its cursor

    # -- reading ----------------------------------------------------------------------------------------------
    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[dict[str, Any] | None]]:
        """A queue that gets every new event while the ``with`` lasts (None: the stream must end)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=QUEUE_MAX)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def is_subscribed(self, queue: asyncio.Queue[dict[str, Any] | None]) -> bool:
        """False once a subscriber was dropped for falling behind."""
        return queue in self._subscribers

    def close(self) -> None:
        """End every subscriber's stream (shutdown)."""
        for queue in list(self._subscribers):
            self._hand(queue, None)

    def events(
        self,
        *,
        types: set[str] | None = None,
        since: datetime | None = None,
        engine: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Matching events, oldest first: of these types, at or after ``since``, about the engine (its id or a
        prefix of it), with an id above ``after_id``; at most ``limit`` (the oldest of the matches)."""
        t0 = since.timestamp() if since is not None else None
        out: list[dict[str, Any]] = []
        for ev in self._events:
            if after_id is not None and ev["id"] <= after_id:
                continue
            if types and ev["type"] not in types:
                continue
            if engine and not (ev["engine"] or "").startswith(engine):
                continue
            if t0 is not None and (_parse(ev["ts"]) or 0.0) < t0:
                continue
            out.append(ev)
            if len(out) >= limit:
                break
        return out

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 before the first)."""
        return self._seq

    def engine_starts(self) -> list[dict[str, Any]]:
        """Each engine started by this process (and still there): its id, image, start time and start duration."""
        return [{"container_id": cid, **v} for cid, v in self._engines.items()]

    def snapshot(self, range_s: float) -> dict[str, Any]:
        """Everything of the last ``range_s`` seconds, for the panel's charts."""
        now = self._clock()
        t0 = now - range_s

        def recent(items: deque[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in i.items() if k != "t"} for i in items if i["t"] >= t0]

        outages = [{k: v for k, v in o.items() if k != "t"} for o in self._outages
                   if o["end"] is None or (_parse(o["end"]) or now) >= t0]
        stress = [{"ts": e["ts"], "event_type": e["action"], "severity": e["severity"], "description": e["message"]}
                  for e in self._events if e["type"] == "stress" and (_parse(e["ts"]) or now) >= t0]
        return {
            "now": _iso(now), "range_s": range_s, "interval_s": self.sample_interval_s,
            "slow_threshold_ms": self.slow_threshold_ms, "samples": recent(self._samples),
            "provisions": recent(self._starts), "vpn_outages": outages, "stress": stress,
            "engines": self.engine_starts(),
        }


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """The record's fields as JSON values (anything else as its text)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if v is None or isinstance(v, str | int | float | bool):
            out[k] = v
        elif isinstance(v, list | tuple):
            out[k] = [x if isinstance(x, str | int | float | bool) or x is None else str(x) for x in v]
        elif isinstance(v, dict):
            out[k] = {str(a): b if isinstance(b, str | int | float | bool) or b is None else str(b)
                      for a, b in v.items()}
        else:
            out[k] = str(v)
    return out
