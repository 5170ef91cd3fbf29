"""The engine simulator's state: sessions, modes, counters and fault timers, behind one lock.

Session progress is computed from the clock on demand, never by a ticking thread: a session is ``idle`` for
``min(1, time_to_dl/2)``, then ``prebuf``, then ``dl`` from ``time_to_dl`` on (latched once seen). Content
modes are looked up at each use, so a mode change applies at once to running sessions. Starting a session
for content that already has one supersedes the old one. :meth:`EngineState.apply_update` is the
``POST /__sim/state`` control API.
"""

from __future__ import annotations

import collections
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from aceorch.sim.engine.cache import DiskCache
from aceorch.sim.engine.config import ENGINE_MODES, EngineConfig
from aceorch.sim.engine.content import Source, normalise_mode, parse_content_mode

__all__ = ["EngineState", "Progress", "Session"]

#: Session start to ``dl`` unless ``SIM_TIME_TO_DL_S`` says otherwise, before the time scale, in seconds.
DEFAULT_TIME_TO_DL_S = 9.0
#: Download rates reported while prebuffering and in ``dl``, in KiB/s.
PREBUF_RATE_KB = 40
DL_RATE_KB = 257


@dataclass
class Session:
    """One playback session: what ``getstream`` opened, who reads it, and when it reached ``dl``."""

    token: str
    playback_session_id: str
    content_id: str
    infohash: str
    pid: str
    hls: bool
    content_n: int
    created: float
    last_activity: float
    readers: int = 0
    waiters: int = 0
    dl_at: float | None = None


@dataclass
class Progress:
    """A session's download state at one moment, as ``stat`` reports it."""

    status: str
    peers: int
    speed_down: int
    speed_up: int
    downloaded: int
    uploaded: int
    flowing: bool
    """True while a progressive reader should receive data."""
    cut: bool
    """True once a ``cut:N`` session should close its readers."""


def _new_counters() -> dict[str, Any]:
    return {
        "requests": {
            key: 0
            for key in (
                "get_version",
                "get_status",
                "network",
                "getstream",
                "stat",
                "stop",
                "playback",
                "hls",
            )
        },
        "sessions_opened": 0,
        "sessions_stopped": 0,
        "sessions_expired": 0,
        "sessions_superseded": 0,
        "sessions_dropped": 0,
        "stops_unknown_session": 0,
        "getstream_failed": 0,
        "cap_rejections": 0,
        "hung_requests": 0,
        "bytes_streamed": 0,
    }


class EngineState:
    """All mutable state of one simulated engine, behind one lock: sessions, modes, counters, timers."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self._lock = threading.RLock()
        self._started = time.monotonic()
        self._sessions: dict[str, Session] = {}
        self._by_content_n: dict[int, str] = {}
        self._dead: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._next_content_n = 1
        self._counters = _new_counters()
        self._engine_mode = config.engine_mode
        self._content_modes = dict(config.content_modes)
        self._time_to_dl_s = config.time_to_dl_s
        self._max_sessions = config.max_sessions
        self._hang_after_s = config.hang_after_s
        self._hang_deadline: float | None = None
        self._crash_after_s = config.crash_after_s
        self._crash_deadline: float | None = None
        self._port_open = False
        self._playlist_loaded_at = 0.0
        self._restart_down_s: float | None = None
        #: The disk cache that streaming fills (``SIM_CACHE_DIR``), reported by ``stat``.
        self.cache = DiskCache(config.cache_dir, config.cache_limit_mb << 20)

    # ----------------------------------------------------------------- derived values

    def uptime(self) -> float:
        """Seconds since the simulator was built (the process started)."""
        return time.monotonic() - self._started

    def scaled(self, seconds: float) -> float:
        """A built-in delay in real seconds: ``seconds`` times ``SIM_TIME_SCALE``."""
        return seconds * self.config.time_scale

    def time_to_dl(self) -> float:
        """Seconds from a session's start to ``dl``: ``SIM_TIME_TO_DL_S``, else 9 s times the time scale."""
        return self._time_to_dl_s if self._time_to_dl_s is not None else self.scaled(DEFAULT_TIME_TO_DL_S)

    def mode_for(self, content_id: str, infohash: str) -> tuple[str, float]:
        """The content mode for a content id or infohash (then ``*``, then ``ok``), parsed."""
        with self._lock:
            raw = (
                self._content_modes.get(content_id)
                or (self._content_modes.get(infohash) if infohash else None)
                or self._content_modes.get("*")
                or "ok"
            )
        return parse_content_mode(raw)

    def effective_mode(self) -> str:
        """The engine-wide mode, after a due ``hang_after`` has turned it into ``hang`` (one shot)."""
        with self._lock:
            if self._hang_deadline is not None and time.monotonic() >= self._hang_deadline:
                self._hang_deadline = None
                if self._engine_mode in ("ok", "hang_ace"):
                    self._engine_mode = "hang"
            return self._engine_mode

    def playlist_loaded(self) -> bool:
        """Whether ``get_status`` reports the playlist loaded (``SIM_PLAYLIST_DELAY_S`` after the port opened)."""
        return time.monotonic() >= self._playlist_loaded_at

    def count(self, key: str, amount: int = 1) -> None:
        """Add to a request counter (``requests.<key>``) or a top-level counter."""
        with self._lock:
            if key in self._counters["requests"]:
                self._counters["requests"][key] += amount
            else:
                self._counters[key] += amount

    # ----------------------------------------------------------------- sessions

    def _progress(self, session: Session, now: float) -> Progress:
        kind, seconds = self.mode_for(session.content_id, session.infohash)
        elapsed = now - session.created
        ttd = self.time_to_dl()
        idle_for = min(1.0, ttd / 2)
        if elapsed < idle_for:
            return Progress("idle", 0, 0, 0, 0, 0, False, False)
        if kind in ("no_peers", "failed"):
            return Progress("prebuf", 0, 0, 0, 0, 0, False, False)
        if kind == "dead_with_peers":
            return Progress("prebuf", 5, 0, 0, 0, 0, False, False)
        if session.dl_at is None and elapsed >= ttd:
            session.dl_at = session.created + ttd
        if session.dl_at is None:
            downloaded = int((elapsed - idle_for) * PREBUF_RATE_KB * 1024)
            return Progress("prebuf", 3, PREBUF_RATE_KB, 4, downloaded, downloaded // 8, False, False)
        prebuf_bytes = int(max(0.0, session.dl_at - session.created - idle_for) * PREBUF_RATE_KB * 1024)
        dl_elapsed = now - session.dl_at
        flowing, cut = True, False
        if kind in ("stall", "cut") and dl_elapsed >= seconds:
            dl_elapsed, flowing, cut = seconds, False, kind == "cut"
        downloaded = prebuf_bytes + int(dl_elapsed * DL_RATE_KB * 1024)
        speed_down = DL_RATE_KB if flowing else 0
        return Progress("dl", 8, speed_down, speed_down // 9, downloaded, downloaded // 7, flowing, cut)

    def progress(self, token: str) -> Progress | None:
        """The live session's progress, or None when the token is unknown (stopped, superseded, expired)."""
        with self._lock:
            session = self._sessions.get(token)
            return None if session is None else self._progress(session, time.monotonic())

    def session(self, token: str) -> Session | None:
        """The live session for a playback token, if any."""
        with self._lock:
            return self._sessions.get(token)

    def session_by_content_n(self, number: int) -> Session | None:
        """The live session behind ``/content/<infohash>/<number>``, if any."""
        with self._lock:
            token = self._by_content_n.get(number)
            return None if token is None else self._sessions.get(token)

    def session_by_infohash(self, infohash: str) -> Session | None:
        """The live session for a swarm, if any (there is at most one per infohash)."""
        with self._lock:
            for session in self._sessions.values():
                if session.infohash == infohash:
                    return session
            return None

    def dead_reason(self, token: str) -> str | None:
        """Why a token's session ended (``stopped``, ``superseded``, ``expired``, ``restart``), if it did."""
        with self._lock:
            return self._dead.get(token)

    def touch(self, token: str) -> None:
        """Mark a session active now, so it does not expire while in use."""
        with self._lock:
            if (session := self._sessions.get(token)) is not None:
                session.last_activity = time.monotonic()

    def adjust(self, token: str, *, readers: int = 0, waiters: int = 0) -> bool:
        """Add to a live session's reader/waiter counts; False if the session is gone."""
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return False
            session.readers += readers
            session.waiters += waiters
            session.last_activity = time.monotonic()
            return True

    def acquire_reader(self, token: str) -> bool | None:
        """Claim the single progressive reader slot: None if the session is gone, False if taken."""
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if session.readers > 0:
                return False
            session.readers = 1
            session.last_activity = time.monotonic()
            return True

    def live_session_count(self) -> int:
        """How many sessions are live."""
        with self._lock:
            return len(self._sessions)

    def would_exceed_cap(self, infohash: str) -> bool:
        """True when one more session (after superseding this content's old one) breaks the cap."""
        with self._lock:
            if self._max_sessions <= 0:
                return False
            others = sum(1 for s in self._sessions.values() if s.infohash != infohash)
            return others >= self._max_sessions

    def open_session(self, source: Source, pid: str, *, hls: bool) -> Session | None:
        """Create a session, superseding any older one for the same content; None when over the cap."""
        with self._lock:
            if self.would_exceed_cap(source.infohash):
                return None
            for old in [s for s in self._sessions.values() if s.infohash == source.infohash]:
                self._end_session(old.token, "superseded")
                self._counters["sessions_superseded"] += 1
            now = time.monotonic()
            session = Session(
                token=secrets.token_hex(16),
                playback_session_id=secrets.token_hex(20),
                content_id=source.content_id,
                infohash=source.infohash,
                pid=pid,
                hls=hls,
                content_n=self._next_content_n,
                created=now,
                last_activity=now,
            )
            self._next_content_n += 1
            self._sessions[session.token] = session
            self._by_content_n[session.content_n] = session.token
            self._counters["sessions_opened"] += 1
            return session

    def _end_session(self, token: str, reason: str) -> bool:
        session = self._sessions.pop(token, None)
        if session is None:
            return False
        self._by_content_n.pop(session.content_n, None)
        self._dead[token] = reason
        while len(self._dead) > 4096:
            self._dead.popitem(last=False)
        return True

    def stop_session(self, token: str) -> bool:
        """End a session on a stop command; False (counted) when the token is unknown."""
        with self._lock:
            if self._end_session(token, "stopped"):
                self._counters["sessions_stopped"] += 1
                return True
            self._counters["stops_unknown_session"] += 1
            return False

    def expire_idle_sessions(self) -> None:
        """End the sessions idle for ``SIM_SESSION_IDLE_S`` that nobody reads or waits on."""
        with self._lock:
            now = time.monotonic()
            for session in list(self._sessions.values()):
                busy = session.readers > 0 or session.waiters > 0
                if not busy and now - session.last_activity >= self.config.session_idle_s:
                    self._end_session(session.token, "expired")
                    self._counters["sessions_expired"] += 1

    def drop_all_sessions(self) -> None:
        """End every session, as a restarting engine loses them all."""
        with self._lock:
            for token in list(self._sessions):
                self._end_session(token, "restart")
                self._counters["sessions_dropped"] += 1

    # ----------------------------------------------------------------- control API

    def state(self) -> dict[str, Any]:
        """The ``GET /__sim/state`` body: modes, configuration, sessions and counters."""
        mode = self.effective_mode()
        with self._lock:
            now = time.monotonic()
            sessions = []
            for session in self._sessions.values():
                progress = self._progress(session, now)
                sessions.append(
                    {
                        "playback_session_id": session.playback_session_id,
                        "token": session.token,
                        "content_id": session.content_id,
                        "infohash": session.infohash,
                        "pid": session.pid,
                        "status": progress.status,
                        "readers": session.readers,
                        "hls": session.hls,
                        "age_s": round(now - session.created, 3),
                    }
                )
            cfg = self.config
            return {
                "engine_mode": mode,
                "content_modes": dict(self._content_modes) or {"*": "ok"},
                "uptime_s": round(now - self._started, 3),
                "port_open": self._port_open,
                "playlist_loaded": self.playlist_loaded(),
                "config": {
                    "http_port": cfg.http_port,
                    "https_port": cfg.https_port,
                    "p2p_port": cfg.p2p_port,
                    "bind_all": cfg.bind_all,
                    "ignored_flags": list(cfg.ignored_flags),
                    "time_to_dl_s": self.time_to_dl(),
                    "hang_after_s": self._hang_after_s,
                    "crash_after_s": self._crash_after_s,
                    "max_sessions": self._max_sessions,
                    "session_idle_s": cfg.session_idle_s,
                    "playlist_delay_s": cfg.playlist_delay_s,
                    "time_scale": cfg.time_scale,
                },
                "sessions": sessions,
                "counters": json.loads(json.dumps(self._counters)),
                "cache": {"dir": self.cache.path, "bytes": self.cache.size(), "limit": self.cache.limit_bytes},
            }

    def apply_update(self, body: Any) -> str | None:
        """Apply a ``POST /__sim/state`` body; returns an error message (nothing applied) or None.

        ``hang_after_s`` and ``crash_after_s`` count from the moment of the update.
        """
        if not isinstance(body, dict):
            return "body must be a JSON object"
        allowed = {
            "engine_mode",
            "content_modes",
            "time_to_dl_s",
            "hang_after_s",
            "crash_after_s",
            "max_sessions",
            "reset_counters",
        }
        unknown = sorted(set(body) - allowed)
        if unknown:
            return f"unknown field(s): {', '.join(unknown)}"
        if "engine_mode" in body and body["engine_mode"] not in ENGINE_MODES:
            return f"engine_mode must be one of {', '.join(ENGINE_MODES)}"
        modes: dict[str, str | None] = {}
        if "content_modes" in body:
            if not isinstance(body["content_modes"], dict):
                return "content_modes must be an object"
            for key, value in body["content_modes"].items():
                if not key.strip():
                    return "content_modes keys must be non-empty"
                if value is None:
                    modes[key.strip().lower()] = None
                    continue
                if not isinstance(value, str):
                    return f"content_modes[{key!r}] must be a string or null"
                try:
                    modes[key.strip().lower()] = normalise_mode(value)
                except ValueError as exc:
                    return f"content_modes[{key!r}]: {exc}"
        for key in ("time_to_dl_s", "hang_after_s", "crash_after_s"):
            if key in body and body[key] is not None:
                value = body[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    return f"{key} must be a number >= 0 or null"
        if "max_sessions" in body:
            value = body["max_sessions"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                return "max_sessions must be an integer >= 0"
        if "reset_counters" in body and not isinstance(body["reset_counters"], bool):
            return "reset_counters must be a boolean"

        now = time.monotonic()
        with self._lock:
            if "engine_mode" in body:
                self._engine_mode = body["engine_mode"]
            for key, mode in modes.items():
                if mode is None:
                    self._content_modes.pop(key, None)
                else:
                    self._content_modes[key] = mode
            if "time_to_dl_s" in body:
                self._time_to_dl_s = None if body["time_to_dl_s"] is None else float(body["time_to_dl_s"])
            if "hang_after_s" in body:
                self._hang_after_s = body["hang_after_s"]
                self._hang_deadline = None if body["hang_after_s"] is None else now + body["hang_after_s"]
            if "crash_after_s" in body:
                self._crash_after_s = body["crash_after_s"]
                self._crash_deadline = None if body["crash_after_s"] is None else now + body["crash_after_s"]
            if "max_sessions" in body:
                self._max_sessions = body["max_sessions"]
            if body.get("reset_counters"):
                self._counters = _new_counters()
        return None

    def request_restart(self, down_s: float) -> None:
        """Ask the lifecycle loop to close the port for ``down_s`` seconds, dropping every session."""
        with self._lock:
            self._restart_down_s = down_s

    # ----------------------------------------------------------------- lifecycle bookkeeping

    def port_opened(self) -> None:
        """Record that the port is open: ``get_status`` says the playlist is loaded ``SIM_PLAYLIST_DELAY_S`` later."""
        with self._lock:
            self._port_open = True
            self._playlist_loaded_at = time.monotonic() + self.config.playlist_delay_s

    def port_closed(self) -> None:
        """Record that the port is closed."""
        with self._lock:
            self._port_open = False

    def arm_timers(self) -> None:
        """Start the ``hang_after_s`` and ``crash_after_s`` clocks, once the port first opens."""
        now = time.monotonic()
        with self._lock:
            if self._hang_after_s is not None:
                self._hang_deadline = now + self._hang_after_s
            if self._crash_after_s is not None:
                self._crash_deadline = now + self._crash_after_s

    def take_due_work(self) -> tuple[bool, float | None]:
        """Whether the crash is due, and the down time of a requested restart (taken, so it runs once)."""
        with self._lock:
            crash_due = self._crash_deadline is not None and time.monotonic() >= self._crash_deadline
            down_s, self._restart_down_s = self._restart_down_s, None
        return crash_due, down_s
