"""The AceStream engine simulator: ``python -m aceorch.sim engine`` (``aceorch sim engine``).

It serves the part of the engine HTTP API that aceorch and the acexy proxy use (``spec/engine-api.md``
§1-§10) closely enough that neither can tell it from a real engine, plus the fault injection and the
``/__sim/*`` control API of §12-§13. Standard library only: it runs as ``python3 -S -m aceorch.sim engine``
in a bare image.

Shape:

- :class:`EngineConfig` is the parsed environment (``CONF``, ``HTTP_PORT``, ``SIM_*``), built by
  :func:`load_config`, which raises :class:`ConfigError` naming the bad variable.
- :class:`EngineSimulator` owns all mutable state (sessions, modes, counters) behind one lock, and the
  server's lifecycle: startup delay, ``SIM_FAIL_START``, the crash timer, session expiry and
  ``/__sim/restart``, all run by :meth:`EngineSimulator.run` on the calling thread, which also waits for
  SIGTERM.
- :class:`EngineHandler` turns HTTP requests into calls on the simulator. Each request has its own daemon
  thread, so a hung request (hang modes, playback waiting for ``dl``) blocks nobody else and never delays
  process exit.

Session progress is computed from the clock on demand, never by a ticking thread: a session is ``idle`` for
``min(1, time_to_dl/2)``, then ``prebuf``, then ``dl`` from ``time_to_dl`` on (latched once seen). Content
modes are looked up at each use, so a mode change applies at once to running sessions.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import ipaddress
import json
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from aceorch.sim import mpegts
from aceorch.sim._common import (
    ConfigError,
    SimHTTPServer,
    SimRequestHandler,
    flags_from_args,
    install_stop_signals,
    log,
    parse_bool,
    parse_float,
    parse_int,
    parse_port,
)

__all__ = [
    "DEFAULT_HTTP_PORT",
    "ENGINE_MODES",
    "EngineConfig",
    "EngineHandler",
    "EngineSimulator",
    "add_arguments",
    "derive_infohash",
    "load_config",
    "parse_content_mode",
    "run_from_args",
]

DEFAULT_HTTP_PORT = 6878
ENGINE_MODES = ("ok", "hang", "hang_ace", "reset", "503")
CONTENT_MODE_KINDS = ("ok", "no_peers", "dead_with_peers", "failed", "stall", "cut")
VERSION = {"code": 3017000, "platform": "linux", "version": "3.1.70"}

UNKNOWN_SESSION = "unknown playback session id"
FAILED_TO_LOAD = "failed to load content"
CAP_REACHED = "simulator session cap reached"
NOT_FOUND_TEXT = "Internal Server Error, couldn't find resource"

# Built-in delays (seconds), multiplied by SIM_TIME_SCALE (§13).
GETSTREAM_LATENCY_S = 0.5
FAIL_BY_ID_S = 4.0
FAIL_BY_INFOHASH_S = 28.0
CAP_REJECT_S = 1.0
MEDIA_FILES_FAIL_S = 4.7
DEFAULT_TIME_TO_DL_S = 9.0
HLS_SEGMENT_S = 5.0
HLS_WINDOW = 17
STALL_DEFAULT_S = 10.0

# Playback: a burst from "cache", then a steady ~2 Mbit/s in ticks.
STREAM_BURST_PACKETS = 2800  # about 512 KiB
STREAM_TICK_S = 0.1
STREAM_TICK_PACKETS = 140  # 26 KiB per 0.1 s
HLS_SEGMENT_PACKETS = 1000
PREBUF_RATE_KB = 40
DL_RATE_KB = 257

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_ACE_PATH = re.compile(r"^/ace/(r|stat|cmd)/([0-9a-fA-F]{40})/([0-9a-f]{32})/?$")
_HLS_PLAYLIST = re.compile(r"^/ace/m/([0-9a-fA-F]{40})/([0-9a-f]{32})\.m3u8$")
_HLS_SEGMENT = re.compile(r"^/ace/c/([0-9a-fA-F]{40})/(\d+)\.ts$")
_CONTENT_PATH = re.compile(r"^/content/([0-9a-fA-F]{40})/(\d+)/?$")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def derive_infohash(content_id: str) -> str:
    """The simulator's swarm infohash for a content id: stable, and different from the id (§13)."""
    return hashlib.sha1(("aceorch-sim:" + content_id.lower()).encode()).hexdigest()


def parse_content_mode(value: str) -> tuple[str, float]:
    """``"stall:15"`` -> ``("stall", 15.0)``; raises ValueError for an unknown mode."""
    kind, sep, arg = value.strip().lower().partition(":")
    if kind not in CONTENT_MODE_KINDS:
        raise ValueError(f"unknown content mode {value!r} (expected one of {', '.join(CONTENT_MODE_KINDS)})")
    if kind in ("stall", "cut"):
        if not sep:
            return kind, STALL_DEFAULT_S
        seconds = float(arg)
        if not seconds >= 0 or seconds == float("inf"):
            raise ValueError(f"bad duration in content mode {value!r}")
        return kind, seconds
    if sep:
        raise ValueError(f"content mode {kind!r} takes no argument")
    return kind, 0.0


def _normalise_mode(value: str) -> str:
    kind, seconds = parse_content_mode(value)
    return f"{kind}:{seconds:g}" if kind in ("stall", "cut") else kind


def _parse_content_modes(name: str, raw: str) -> dict[str, str]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(name, f"expected a JSON object, got {raw!r} ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(name, f"expected a JSON object, got {raw!r}")
    modes: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(value, str) or not key.strip():
            raise ConfigError(name, f"entry {key!r}: expected a non-empty key and a mode string")
        try:
            modes[key.strip().lower()] = _normalise_mode(value)
        except ValueError as exc:
            raise ConfigError(name, f"entry {key!r}: {exc}") from None
    return modes


@dataclass
class EngineConfig:
    """The simulator's configuration, from the environment and flags (``engine-api.md`` §13)."""

    http_port: int = DEFAULT_HTTP_PORT
    https_port: int | None = None
    p2p_port: int | None = None
    bind_all: bool = False
    ignored_flags: list[str] = field(default_factory=list)
    host: str = "0.0.0.0"
    startup_delay_s: float = 0.0
    engine_mode: str = "ok"
    hang_after_s: float | None = None
    fail_start: int | None = None
    crash_after_s: float | None = None
    time_to_dl_s: float | None = None
    """Explicit ``SIM_TIME_TO_DL_S``; None means the built-in 9 s times ``time_scale``."""
    content_modes: dict[str, str] = field(default_factory=dict)
    playlist_delay_s: float = 0.0
    session_idle_s: float = 60.0
    max_sessions: int = 0
    time_scale: float = 1.0
    log_requests: bool = False


def _parse_conf(raw: str) -> tuple[int | None, int | None, bool, list[str]]:
    """``CONF``: one engine flag per line (a literal ``\\n`` also separates, as some env files write it)."""
    http_port: int | None = None
    https_port: int | None = None
    bind_all = False
    ignored: list[str] = []
    for line in raw.replace("\\n", "\n").splitlines():
        flag = line.strip()
        if not flag:
            continue
        key, sep, value = flag.partition("=")
        if key == "--http-port" and sep:
            http_port = parse_port("CONF", value)
        elif key == "--https-port" and sep:
            https_port = parse_port("CONF", value)
        elif flag == "--bind-all":
            bind_all = True
        else:
            ignored.append(flag)
    return http_port, https_port, bind_all, ignored


def load_config(env: Mapping[str, str], flags: Mapping[str, str] | None = None) -> EngineConfig:
    """Build the configuration; ``flags`` maps variable names to command-line values, which win over ``env``.

    Empty values count as unset (compose files often pass ``VAR=``). Raises :class:`ConfigError`.
    """
    flags = flags or {}

    def get(name: str) -> str | None:
        value = flags.get(name, env.get(name))
        return value if value not in (None, "") else None

    cfg = EngineConfig()
    conf_http, conf_https, conf_bind_all, cfg.ignored_flags = _parse_conf(get("CONF") or "")
    env_http = get("HTTP_PORT")
    if "HTTP_PORT" in flags and flags["HTTP_PORT"]:
        cfg.http_port = parse_port("HTTP_PORT", flags["HTTP_PORT"])
    elif conf_http is not None:
        cfg.http_port = conf_http
    elif env_http is not None:
        cfg.http_port = parse_port("HTTP_PORT", env_http)
    env_https = get("HTTPS_PORT")
    if "HTTPS_PORT" in flags and flags["HTTPS_PORT"]:
        cfg.https_port = parse_port("HTTPS_PORT", flags["HTTPS_PORT"])
    elif conf_https is not None:
        cfg.https_port = conf_https
    elif env_https is not None:
        cfg.https_port = parse_port("HTTPS_PORT", env_https)
    if (value := get("P2P_PORT")) is not None:
        cfg.p2p_port = parse_port("P2P_PORT", value)
    bind_all_value = get("BIND_ALL")
    cfg.bind_all = conf_bind_all or (bind_all_value is not None and parse_bool("BIND_ALL", bind_all_value))
    if (value := get("SIM_HOST")) is not None:
        cfg.host = value.strip()
    if (value := get("SIM_STARTUP_DELAY_S")) is not None:
        cfg.startup_delay_s = parse_float("SIM_STARTUP_DELAY_S", value)
    if (value := get("SIM_HANG")) is not None:
        if value.strip().lower() == "ace":
            cfg.engine_mode = "hang_ace"
        else:
            try:
                cfg.engine_mode = "hang" if parse_bool("SIM_HANG", value) else "ok"
            except ConfigError:
                raise ConfigError(
                    "SIM_HANG", f"expected 1/true (all endpoints), ace or 0/false, got {value!r}"
                ) from None
    if (value := get("SIM_HANG_AFTER_S")) is not None:
        cfg.hang_after_s = parse_float("SIM_HANG_AFTER_S", value)
    if (value := get("SIM_FAIL_START")) is not None:
        stripped = value.strip()
        if stripped.isdigit():
            code = parse_int("SIM_FAIL_START", stripped, minimum=0, maximum=255)
            cfg.fail_start = code or None
        else:
            try:
                cfg.fail_start = 1 if parse_bool("SIM_FAIL_START", value) else None
            except ConfigError:
                raise ConfigError(
                    "SIM_FAIL_START", f"expected an exit status 1-255 or a boolean, got {value!r}"
                ) from None
    if (value := get("SIM_CRASH_AFTER_S")) is not None:
        cfg.crash_after_s = parse_float("SIM_CRASH_AFTER_S", value)
    if (value := get("SIM_TIME_TO_DL_S")) is not None:
        cfg.time_to_dl_s = parse_float("SIM_TIME_TO_DL_S", value)
    if (value := get("SIM_CONTENT_MODES")) is not None:
        cfg.content_modes = _parse_content_modes("SIM_CONTENT_MODES", value)
    if (value := get("SIM_PLAYLIST_DELAY_S")) is not None:
        cfg.playlist_delay_s = parse_float("SIM_PLAYLIST_DELAY_S", value)
    if (value := get("SIM_SESSION_IDLE_S")) is not None:
        cfg.session_idle_s = parse_float("SIM_SESSION_IDLE_S", value)
    if (value := get("SIM_MAX_SESSIONS")) is not None:
        cfg.max_sessions = parse_int("SIM_MAX_SESSIONS", value, minimum=0)
    if (value := get("SIM_TIME_SCALE")) is not None:
        cfg.time_scale = parse_float("SIM_TIME_SCALE", value)
    if (value := get("SIM_LOG_REQUESTS")) is not None:
        cfg.log_requests = parse_bool("SIM_LOG_REQUESTS", value)
    return cfg


@dataclass
class Source:
    """What a getstream request asked for."""

    kind: str  # "id", "infohash", "url", "magnet"
    content_id: str
    infohash: str
    valid: bool


def pick_source(query: Mapping[str, str]) -> Source | None:
    """The content a start request names; precedence content_id/id > infohash > url > magnet (§5)."""
    for key in ("content_id", "id"):
        if value := query.get(key, "").strip().lower():
            valid = bool(_HEX40.match(value))
            return Source("id", value, derive_infohash(value) if valid else "", valid)
    if value := query.get("infohash", "").strip().lower():
        valid = bool(_HEX40.match(value))
        return Source("infohash", value, value if valid else "", valid)
    for key in ("url", "direct_url"):
        if value := query.get(key, "").strip():
            content_id = hashlib.sha1(("url:" + value).encode()).hexdigest()
            return Source("url", content_id, derive_infohash(content_id), True)
    if value := query.get("magnet", "").strip():
        match = re.search(r"urn:btih:([0-9a-fA-F]{40})", value)
        if match:
            infohash = match.group(1).lower()
            return Source("magnet", infohash, infohash, True)
        content_id = hashlib.sha1(("magnet:" + value).encode()).hexdigest()
        return Source("magnet", content_id, derive_infohash(content_id), True)
    return None


@dataclass
class Session:
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


class EngineSimulator:
    """All state of one simulated engine, and the lifecycle of its listening socket."""

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
        self._port_opened_at: float | None = None
        self._playlist_loaded_at = 0.0
        self._restart_down_s: float | None = None
        self._server: SimHTTPServer | None = None

    # ----------------------------------------------------------------- derived values

    def scaled(self, seconds: float) -> float:
        return seconds * self.config.time_scale

    def time_to_dl(self) -> float:
        return self._time_to_dl_s if self._time_to_dl_s is not None else self.scaled(DEFAULT_TIME_TO_DL_S)

    def mode_for(self, content_id: str, infohash: str) -> tuple[str, float]:
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
        return time.monotonic() >= self._playlist_loaded_at

    def count(self, key: str, amount: int = 1) -> None:
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
        with self._lock:
            return self._sessions.get(token)

    def session_by_content_n(self, number: int) -> Session | None:
        with self._lock:
            token = self._by_content_n.get(number)
            return None if token is None else self._sessions.get(token)

    def session_by_infohash(self, infohash: str) -> Session | None:
        with self._lock:
            for session in self._sessions.values():
                if session.infohash == infohash:
                    return session
            return None

    def dead_reason(self, token: str) -> str | None:
        with self._lock:
            return self._dead.get(token)

    def touch(self, token: str) -> None:
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
        with self._lock:
            if self._end_session(token, "stopped"):
                self._counters["sessions_stopped"] += 1
                return True
            self._counters["stops_unknown_session"] += 1
            return False

    def expire_idle_sessions(self) -> None:
        with self._lock:
            now = time.monotonic()
            for session in list(self._sessions.values()):
                busy = session.readers > 0 or session.waiters > 0
                if not busy and now - session.last_activity >= self.config.session_idle_s:
                    self._end_session(session.token, "expired")
                    self._counters["sessions_expired"] += 1

    def drop_all_sessions(self) -> None:
        with self._lock:
            for token in list(self._sessions):
                self._end_session(token, "restart")
                self._counters["sessions_dropped"] += 1

    def stat_payload(self, session: Session, progress: Progress) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "status": progress.status,
            "peers": progress.peers,
            "speed_down": progress.speed_down,
            "speed_up": progress.speed_up,
            "downloaded": progress.downloaded,
            "uploaded": progress.uploaded,
            "total_progress": 0,
            "infohash": session.infohash,
            "playback_session_id": session.playback_session_id,
            "is_live": 1,
            "is_encrypted": 0,
            "client_session_id": -1,
            "selected_file_index": -1,
            "selected_stream_index": 0,
            "stream_status": 0 if progress.status == "dl" else -1,
            "manifest_access_mode": -1,
            "network_monitor_status": 0,
            "network_monitor_started": False,
            "debug_level": 0,
            "disk_cache_stats": {
                "avail": 3199156224,
                "disk_cache_limit": 2266017044,
                "inactive_inuse": 0,
                "active_inuse": min(progress.downloaded, 2266017044),
            },
        }
        if progress.status == "dl":
            now = int(time.time())
            last = str(now)
            first = str(now - 1800)
            payload["livepos"] = {
                "pos": last,
                "last": last,
                "last_ts": last,
                "live_last": last,
                "first_ts": first,
                "live_first": first,
                "is_live": "1",
                "buffer_pieces": "30",
            }
        return payload

    # ----------------------------------------------------------------- control API

    def state(self) -> dict[str, Any]:
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
                "port_open": self._server is not None,
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
                    modes[key.strip().lower()] = _normalise_mode(value)
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
        with self._lock:
            self._restart_down_s = down_s

    # ----------------------------------------------------------------- lifecycle

    def _open(self) -> SimHTTPServer:
        server = SimHTTPServer((self.config.host, self.config.http_port), EngineHandler, self)
        now = time.monotonic()
        with self._lock:
            self._server = server
            self._port_opened_at = now
            self._playlist_loaded_at = now + self.config.playlist_delay_s
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="engine-sim-serve", daemon=True
        ).start()
        return server

    def _close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def run(self) -> int:
        """Serve until ``stop_event`` is set (SIGTERM); returns the process exit status."""
        cfg = self.config
        remaining = cfg.startup_delay_s - (time.monotonic() - self._started)
        if remaining > 0:
            if cfg.fail_start is None:  # SIM_FAIL_START promises exactly one stderr line
                log(f"engine-sim: starting; opening the port in {remaining:.2f} s")
            if self.stop_event.wait(remaining):
                return 0
        if cfg.fail_start is not None:
            log(f"engine-sim: SIM_FAIL_START: exiting with status {cfg.fail_start} without opening the port")
            return cfg.fail_start
        try:
            self._open()
        except OSError as exc:
            log(f"engine-sim: cannot listen on {cfg.host}:{cfg.http_port}: {exc}")
            return 1
        now = time.monotonic()
        with self._lock:
            if self._hang_after_s is not None:
                self._hang_deadline = now + self._hang_after_s
            if self._crash_after_s is not None:
                self._crash_deadline = now + self._crash_after_s
        log(f"engine-sim: listening on {cfg.host}:{cfg.http_port} (mode {self._engine_mode})")
        try:
            while not self.stop_event.wait(0.05):
                self._tick()
        finally:
            self._close()
        log("engine-sim: stopped")
        return 0

    def _tick(self) -> None:
        with self._lock:
            crash_due = self._crash_deadline is not None and time.monotonic() >= self._crash_deadline
            down_s, self._restart_down_s = self._restart_down_s, None
        if crash_due:
            log("engine-sim: crashing on purpose (crash_after_s)")
            os._exit(1)
        self.expire_idle_sessions()
        if down_s is not None:
            self._restart(down_s)

    def _restart(self, down_s: float) -> None:
        log(f"engine-sim: simulated restart, port closed for {down_s:g} s")
        self.drop_all_sessions()
        self._close()
        if self.stop_event.wait(down_s):
            return
        while not self.stop_event.is_set():
            try:
                self._open()
                log("engine-sim: port reopened")
                return
            except OSError as exc:
                log(f"engine-sim: reopening failed ({exc}); retrying")
                self.stop_event.wait(0.2)


def _client_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or any(ip in net for net in _RFC1918)


class EngineHandler(SimRequestHandler):
    """One request against the simulated engine."""

    @property
    def sim(self) -> EngineSimulator:
        return cast(EngineSimulator, cast(SimHTTPServer, self.server).app)

    def setup(self) -> None:
        super().setup()
        self.log_requests = self.sim.config.log_requests

    # ----------------------------------------------------------------- helpers

    def base_url(self) -> str:
        host = (self.headers.get("Host") or "").strip() or f"127.0.0.1:{self.sim.config.http_port}"
        return f"http://{host}"

    def ace_json(self, response: Any, error: str | None) -> None:
        self.send_json(200, {"response": response, "error": error})

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            self.sim.stop_event.wait(seconds)

    def hang(self) -> None:
        """Never answer: park until the client gives up (or the process stops)."""
        self.sim.count("hung_requests")
        self.close_connection = True
        while not self.sim.stop_event.is_set():
            if self.wait_client_gone(0.25):
                return

    # ----------------------------------------------------------------- dispatch

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/__sim/"):
            self.control_post(path)
            return
        if self.engine_mode_intercepts(path):
            return
        self.send_text(501, "Unsupported method ('POST')")

    def do_GET(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        query = {k: v[0] for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
        if path.startswith("/__sim/"):
            self.control_get(path)
            return
        if self.engine_mode_intercepts(path):
            return
        if not self.sim.config.bind_all and not _client_allowed(self.client_address[0]):
            self.send_text(500, "Internal server error")
            return
        self.route(path, query)

    def engine_mode_intercepts(self, path: str) -> bool:
        mode = self.sim.effective_mode()
        if mode == "hang" or (mode == "hang_ace" and path.startswith(("/ace/", "/content/"))):
            self.hang()
            return True
        if mode == "reset":
            self.reset_connection()
            return True
        if mode == "503":
            self.send_text(503, "Service Unavailable")
            return True
        return False

    def route(self, path: str, query: dict[str, str]) -> None:
        if path == "/webui/api/service":
            self.webui_service(query)
        elif path == "/server/api":
            self.server_api(query)
        elif path in ("/ace/getstream", "/ace/manifest.m3u8"):
            self.start_stream(query, hls=path == "/ace/manifest.m3u8")
        elif match := _ACE_PATH.match(path):
            action, infohash, token = match.group(1), match.group(2).lower(), match.group(3)
            if action == "r":
                self.playback_redirect(infohash, token)
            elif action == "stat":
                self.stat(infohash, token)
            else:
                self.stop_command(infohash, token, query)
        elif match := _CONTENT_PATH.match(path):
            self.content(match.group(1).lower(), int(match.group(2)))
        elif match := _HLS_PLAYLIST.match(path):
            self.hls_playlist(match.group(1).lower(), match.group(2))
        elif match := _HLS_SEGMENT.match(path):
            self.hls_segment(match.group(1).lower(), int(match.group(2)))
        else:
            self.send_text(404, "Not Found")

    # ----------------------------------------------------------------- §1-§4

    def webui_service(self, query: dict[str, str]) -> None:
        if query.get("method") == "get_version":
            self.sim.count("get_version")
            payload: dict[str, Any] = {"result": dict(VERSION), "error": None}
        else:
            payload = {"result": None, "error": "unknown method"}
        if query.get("format") == "jsonp" and query.get("callback"):
            body = f"{query['callback']}({json.dumps(payload)});".encode()
            self.send_body(200, body, "application/javascript")
        else:
            self.send_json(200, payload)

    def server_api(self, query: dict[str, str]) -> None:
        method = query.get("method", "")
        if method == "get_status":
            self.sim.count("get_status")
            result = {"playlist_loaded": self.sim.playlist_loaded(), "version": dict(VERSION)}
            self.send_json(200, {"result": result})
        elif method == "get_network_connection_status":
            self.sim.count("network")
            self.send_json(200, {"result": {"connected": True}})
        elif method == "get_version":
            self.send_json(200, {"result": None, "error": "access denied"})
        elif method == "get_api_access_token":
            token = hashlib.sha256(f"aceorch-sim:{self.sim.config.http_port}".encode()).hexdigest()
            self.send_json(200, {"result": {"token": token}})
        elif method == "get_media_files":
            self.media_files(query)
        else:
            self.send_json(200, {"result": None, "error": "unknown method"})

    def media_files(self, query: dict[str, str]) -> None:
        source = pick_source({k: v for k, v in query.items() if k in ("content_id", "id", "infohash")})
        kind = (
            "failed" if source is None or not source.valid else self.sim.mode_for(source.content_id, source.infohash)[0]
        )
        if source is None or kind == "failed":
            self.wait(self.sim.scaled(MEDIA_FILES_FAIL_S))
            self.send_json(200, {"error": {"message": "cannot get transport file", "code": 0}})
            return
        name = f"sim-{source.content_id[:8]}"
        result = {
            "files": [{"index": 0, "filename": name}],
            "name": name,
            "infohash": source.infohash,
            "transport_type": "bt",
            "type": "live",
            "transport_file_cache_key": None,
        }
        self.send_json(200, {"result": result})

    # ----------------------------------------------------------------- §5-§7 starting

    def start_stream(self, query: dict[str, str], *, hls: bool) -> None:
        sim = self.sim
        sim.count("getstream")
        as_json = query.get("format", "").lower() == "json"
        source = pick_source(query)
        if source is None:
            self.send_text(500, "Internal Server Error, missing content id")
            return
        kind = sim.mode_for(source.content_id, source.infohash)[0] if source.valid else "failed"
        if kind == "failed":
            self.wait(sim.scaled(FAIL_BY_INFOHASH_S if source.kind == "infohash" else FAIL_BY_ID_S))
            sim.count("getstream_failed")
            self.start_failed(FAILED_TO_LOAD, as_json)
            return
        if sim.would_exceed_cap(source.infohash):
            self.wait(sim.scaled(CAP_REJECT_S))
            sim.count("cap_rejections")
            self.start_failed(CAP_REACHED, as_json)
            return
        self.wait(sim.scaled(GETSTREAM_LATENCY_S))
        session = sim.open_session(source, query.get("pid") or query.get("sid") or "", hls=hls)
        if session is None:
            sim.count("cap_rejections")
            self.start_failed(CAP_REACHED, as_json)
            return
        base = f"{self.base_url()}/ace"
        tail = f"{session.infohash}/{session.token}"
        playback_url = f"{base}/m/{tail}.m3u8" if hls else f"{base}/r/{tail}"
        if not as_json:
            self.send_body(302, b"", "text/plain", {"Location": playback_url})
            return
        self.ace_json(
            {
                "playback_url": playback_url,
                "stat_url": f"{base}/stat/{tail}",
                "command_url": f"{base}/cmd/{tail}",
                "infohash": session.infohash,
                "playback_session_id": session.playback_session_id,
                "is_live": 1,
                "is_encrypted": 0,
                "client_session_id": -1,
            },
            None,
        )

    def start_failed(self, error: str, as_json: bool) -> None:
        if as_json:
            self.ace_json(None, error)
        else:
            self.send_text(500, error)

    # ----------------------------------------------------------------- §8-§9

    def stat(self, infohash: str, token: str) -> None:
        sim = self.sim
        sim.count("stat")
        session = sim.session(token)
        progress = sim.progress(token)
        if session is None or progress is None or session.infohash != infohash:
            self.ace_json(None, UNKNOWN_SESSION)
            return
        sim.touch(token)
        self.ace_json(sim.stat_payload(session, progress), None)

    def stop_command(self, infohash: str, token: str, query: dict[str, str]) -> None:
        if query.get("method") != "stop":
            self.ace_json(None, "unknown method")
            return
        sim = self.sim
        sim.count("stop")
        session = sim.session(token)
        if session is None or session.infohash != infohash:
            sim.count("stops_unknown_session")
            self.ace_json(None, UNKNOWN_SESSION)
            return
        if sim.stop_session(token):
            self.ace_json("ok", None)
        else:
            self.ace_json(None, UNKNOWN_SESSION)

    # ----------------------------------------------------------------- §6 playback

    def await_dl(self, token: str) -> Progress | None:
        """Hold the request, sending nothing, until the session reaches ``dl`` (§12.6).

        None when the session ends or the client gives up first.
        """
        sim = self.sim
        if not sim.adjust(token, waiters=1):
            return None
        try:
            while not sim.stop_event.is_set():
                progress = sim.progress(token)
                if progress is None:
                    return None
                if progress.status == "dl":
                    return progress
                if self.wait_client_gone(0.05):
                    return None
            return None
        finally:
            sim.adjust(token, waiters=-1)

    def playback_redirect(self, infohash: str, token: str) -> None:
        sim = self.sim
        sim.count("playback")
        session = sim.session(token)
        if session is None or session.infohash != infohash:
            self.send_text(500, NOT_FOUND_TEXT)
            return
        if self.await_dl(token) is None:
            if not self.client_gone() and not sim.stop_event.is_set():
                self.send_text(500, NOT_FOUND_TEXT)
            return
        location = f"{self.base_url()}/content/{infohash}/{session.content_n}"
        self.send_body(302, b"", "text/plain", {"Location": location})

    def content(self, infohash: str, number: int) -> None:
        sim = self.sim
        session = sim.session_by_content_n(number)
        if session is None or session.infohash != infohash:
            self.send_text(500, NOT_FOUND_TEXT)
            return
        token = session.token
        if self.await_dl(token) is None:
            if not self.client_gone() and not sim.stop_event.is_set():
                self.send_text(500, NOT_FOUND_TEXT)
            return
        claimed = sim.acquire_reader(token)
        if claimed is None:
            self.send_text(500, NOT_FOUND_TEXT)
            return
        if not claimed:
            # One consumer per progressive session (§6): the real engine corrupts the second response;
            # we refuse it.
            self.send_text(500, "Internal Server Error, playback session already has a reader")
            return
        try:
            self.stream(token)
        finally:
            sim.adjust(token, readers=-1)

    def stream(self, token: str) -> None:
        sim = self.sim
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "video/MP2T")
        self.send_header("Connection", "close")
        self.end_headers()
        generator = mpegts.TSGenerator()
        burst_sent = False
        try:
            while not sim.stop_event.is_set():
                progress = sim.progress(token)
                if progress is None or progress.cut:
                    return
                if not progress.flowing:
                    if self.wait_client_gone(0.1):
                        return
                    continue
                packets = STREAM_TICK_PACKETS if burst_sent else STREAM_BURST_PACKETS
                burst_sent = True
                data = generator.chunk(packets)
                self.wfile.write(data)
                sim.count("bytes_streamed", len(data))
                sim.touch(token)
                sim.stop_event.wait(STREAM_TICK_S)
        except OSError:
            return

    # ----------------------------------------------------------------- §7 HLS

    def hls_playlist(self, infohash: str, token: str) -> None:
        sim = self.sim
        sim.count("hls")
        session = sim.session(token)
        if session is None or session.infohash != infohash:
            if sim.dead_reason(token) == "superseded":
                self.send_text(403, "Forbidden")
            else:
                self.send_text(500, NOT_FOUND_TEXT)
            return
        if self.await_dl(token) is None:
            if not self.client_gone() and not sim.stop_event.is_set():
                status = 403 if sim.dead_reason(token) == "superseded" else 500
                self.send_text(status, "Forbidden" if status == 403 else NOT_FOUND_TEXT)
            return
        sim.touch(token)
        dl_at = session.dl_at if session.dl_at is not None else time.monotonic()
        segment_real_s = max(0.01, sim.scaled(HLS_SEGMENT_S))
        newest = int((time.monotonic() - dl_at) / segment_real_s)
        first = max(0, newest - HLS_WINDOW + 1)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            "#EXT-X-TARGETDURATION:7",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        for number in range(first, newest + 1):
            lines.append(f"#EXTINF:{HLS_SEGMENT_S:.6f},")
            lines.append(f"{self.base_url()}/ace/c/{infohash}/{number}.ts")
        self.send_body(200, ("\n".join(lines) + "\n").encode(), "application/vnd.apple.mpegurl")

    def hls_segment(self, infohash: str, number: int) -> None:
        sim = self.sim
        sim.count("hls")
        session = sim.session_by_infohash(infohash)
        if session is None:
            self.send_text(500, NOT_FOUND_TEXT)
            return
        sim.touch(session.token)
        body = _segment()
        sim.count("bytes_streamed", len(body))
        self.send_body(200, body, "video/MP2T")

    # ----------------------------------------------------------------- §13 control API

    def control_get(self, path: str) -> None:
        if path == "/__sim/state":
            self.send_json(200, self.sim.state())
        elif path == "/__sim/restart":
            self.send_json(405, {"error": "use POST"})
        else:
            self.send_json(404, {"error": f"no such control route: {path}"})

    def control_post(self, path: str) -> None:
        body, error = self.read_json_body()
        if error is not None:
            self.send_json(400, {"error": error})
            return
        if path == "/__sim/state":
            error = self.sim.apply_update(body)
            if error is not None:
                self.send_json(400, {"error": error})
            else:
                self.send_json(200, self.sim.state())
        elif path == "/__sim/restart":
            down_s = body.get("down_s", 0) if isinstance(body, dict) else None
            if isinstance(down_s, bool) or not isinstance(down_s, (int, float)) or down_s < 0:
                self.send_json(400, {"error": "down_s must be a number >= 0"})
                return
            self.sim.request_restart(float(down_s))
            self.send_json(202, {"restarting": True, "down_s": down_s})
        else:
            self.send_json(404, {"error": f"no such control route: {path}"})


_SEGMENT_CACHE: list[bytes] = []


def _segment() -> bytes:
    if not _SEGMENT_CACHE:
        _SEGMENT_CACHE.append(mpegts.segment_bytes(HLS_SEGMENT_PACKETS))
    return _SEGMENT_CACHE[0]


# --------------------------------------------------------------------- CLI

_FLAGS: list[tuple[str, str, str]] = [
    ("--conf", "CONF", "engine flags, one per line (--http-port=N, --https-port=M, --bind-all)"),
    ("--http-port", "HTTP_PORT", "HTTP port (beats CONF and HTTP_PORT; default 6878)"),
    ("--https-port", "HTTPS_PORT", "HTTPS port (recorded only)"),
    ("--p2p-port", "P2P_PORT", "P2P port (recorded only)"),
    ("--host", "SIM_HOST", "listen address (default 0.0.0.0)"),
    ("--startup-delay", "SIM_STARTUP_DELAY_S", "seconds before the port opens"),
    ("--hang", "SIM_HANG", "1: never answer; ace: only /ace/* and /content/* hang"),
    ("--hang-after", "SIM_HANG_AFTER_S", "healthy for this long, then hang"),
    ("--fail-start", "SIM_FAIL_START", "exit with this status (1-255, or true = 1) instead of listening"),
    ("--crash-after", "SIM_CRASH_AFTER_S", "exit abruptly with status 1 after this long"),
    ("--time-to-dl", "SIM_TIME_TO_DL_S", "session start to dl (default 9 x time scale)"),
    ("--content-modes", "SIM_CONTENT_MODES", "JSON object: content id or infohash (or *) -> mode"),
    ("--playlist-delay", "SIM_PLAYLIST_DELAY_S", "get_status says playlist_loaded: false this long"),
    ("--session-idle", "SIM_SESSION_IDLE_S", "idle sessions expire after this long (default 60)"),
    ("--max-sessions", "SIM_MAX_SESSIONS", "cap on concurrent sessions (0 = none)"),
    ("--time-scale", "SIM_TIME_SCALE", "multiplies built-in delays (default 1)"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``aceorch sim engine``; each overrides the environment variable named in its help."""
    for flag, env_name, text in _FLAGS:
        parser.add_argument(flag, dest=env_name, default=None, metavar="VALUE", help=f"{text} [env {env_name}]")
    parser.add_argument(
        "--bind-all",
        dest="BIND_ALL",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve clients outside loopback/RFC1918 [env BIND_ALL]",
    )
    parser.add_argument(
        "--log-requests",
        dest="SIM_LOG_REQUESTS",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log every request on stderr [env SIM_LOG_REQUESTS]",
    )


def run_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Parse the configuration and serve until SIGTERM; exit status 2 on a bad value."""
    try:
        config = load_config(env, flags_from_args(args))
    except ConfigError as exc:
        log(f"engine-sim: invalid configuration: {exc}")
        return 2
    simulator = EngineSimulator(config)
    restore = install_stop_signals(simulator.stop_event)
    try:
        return simulator.run()
    finally:
        restore()
