"""The engine simulator's HTTP routes, apart from media: :class:`EngineHandler`.

It serves the part of the AceStream engine HTTP API that aceorch and the acexy proxy use, closely enough that
neither can tell it from a real engine: ``/webui/api/service`` (version), ``/server/api`` (status, network,
media files), ``/ace/getstream`` and ``/ace/manifest.m3u8`` (start), ``/ace/stat/...`` and ``/ace/cmd/...``
(stat, stop), and the ``/__sim/state`` and ``/__sim/restart`` control API. Engine-wide fault modes (hang,
reset, 503) intercept requests before routing; clients outside loopback and RFC 1918 get 500 unless
``--bind-all``. Media routes come from :class:`~aceorch.sim.engine.playback.PlaybackHandler`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import time
import urllib.parse
from typing import Any

from aceorch.sim.engine.content import pick_source
from aceorch.sim.engine.playback import PlaybackHandler
from aceorch.sim.engine.state import Progress, Session

__all__ = ["EngineHandler", "client_allowed", "stat_payload"]

VERSION = {"code": 3017000, "platform": "linux", "version": "3.1.70"}

UNKNOWN_SESSION = "unknown playback session id"
FAILED_TO_LOAD = "failed to load content"
CAP_REACHED = "simulator session cap reached"

# How long the real engine takes to answer, in seconds before the time scale: a start, a failed start by
# content id and by infohash, a start refused by the session cap, a failed media-files lookup.
GETSTREAM_LATENCY_S = 0.5
FAIL_BY_ID_S = 4.0
FAIL_BY_INFOHASH_S = 28.0
CAP_REJECT_S = 1.0
MEDIA_FILES_FAIL_S = 4.7

_ACE_PATH = re.compile(r"^/ace/(r|stat|cmd)/([0-9a-fA-F]{40})/([0-9a-f]{32})/?$")
_HLS_PLAYLIST = re.compile(r"^/ace/m/([0-9a-fA-F]{40})/([0-9a-f]{32})\.m3u8$")
_HLS_SEGMENT = re.compile(r"^/ace/c/([0-9a-fA-F]{40})/(\d+)\.ts$")
_CONTENT_PATH = re.compile(r"^/content/([0-9a-fA-F]{40})/(\d+)/?$")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def client_allowed(address: str) -> bool:
    """Whether the engine serves this client without ``--bind-all``: loopback and RFC 1918 addresses only."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or any(ip in net for net in _RFC1918)


def stat_payload(session: Session, progress: Progress, cache_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``stat`` response for a session: the real engine's fields, with this moment's progress.

    ``cache_stats`` is the engine's ``disk_cache_stats`` (its cache directory now); without it, the session's
    download stands in."""
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
        "disk_cache_stats": cache_stats
        or {
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


class EngineHandler(PlaybackHandler):
    """One request against the simulated engine."""

    def hang(self) -> None:
        """Never answer: park until the client gives up (or the process stops)."""
        self.sim.count("hung_requests")
        self.close_connection = True
        while not self.sim.stop_event.is_set():
            if self.wait_client_gone(0.25):
                return

    # ----------------------------------------------------------------- dispatch

    def do_POST(self) -> None:
        """Serve the control API; anything else is 501, as the real engine answers POST."""
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/__sim/"):
            self.control_post(path)
            return
        if self.engine_mode_intercepts(path):
            return
        self.send_text(501, "Unsupported method ('POST')")

    def do_GET(self) -> None:
        """Serve the control API, apply engine-wide fault modes and the client check, then route."""
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        query = {k: v[0] for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
        if path.startswith("/__sim/"):
            self.control_get(path)
            return
        if self.engine_mode_intercepts(path):
            return
        if not self.sim.config.bind_all and not client_allowed(self.client_address[0]):
            self.send_text(500, "Internal server error")
            return
        self.route(path, query)

    def engine_mode_intercepts(self, path: str) -> bool:
        """Apply the engine-wide mode (hang, reset, 503) to this request; True when it did."""
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
        """Dispatch a GET by path to its route; unknown paths are 404."""
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

    # ----------------------------------------------------------------- version, status, media files

    def webui_service(self, query: dict[str, str]) -> None:
        """``/webui/api/service``: ``get_version``, as JSON or JSONP."""
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
        """``/server/api``: status, network status, API token and media files."""
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
        """``get_media_files``: one file named after the content, or the engine's error after a delay."""
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

    # ----------------------------------------------------------------- starting a stream

    def start_stream(self, query: dict[str, str], *, hls: bool) -> None:
        """``/ace/getstream`` and ``/ace/manifest.m3u8``: open a session and answer with its URLs."""
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
        """Answer a failed start as the engine does: a JSON error, or a 500 text."""
        if as_json:
            self.ace_json(None, error)
        else:
            self.send_text(500, error)

    # ----------------------------------------------------------------- stat and stop

    def stat(self, infohash: str, token: str) -> None:
        """``/ace/stat/<infohash>/<token>``: the session's progress, or the unknown-session error."""
        sim = self.sim
        sim.count("stat")
        session = sim.session(token)
        progress = sim.progress(token)
        if session is None or progress is None or session.infohash != infohash:
            self.ace_json(None, UNKNOWN_SESSION)
            return
        sim.touch(token)
        self.ace_json(stat_payload(session, progress, sim.cache.stats()), None)

    def stop_command(self, infohash: str, token: str, query: dict[str, str]) -> None:
        """``/ace/cmd/<infohash>/<token>?method=stop``: end the session."""
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

    # ----------------------------------------------------------------- /__sim/* control API

    def control_get(self, path: str) -> None:
        """``GET /__sim/state``: the simulator's state."""
        if path == "/__sim/state":
            self.send_json(200, self.sim.state())
        elif path == "/__sim/restart":
            self.send_json(405, {"error": "use POST"})
        else:
            self.send_json(404, {"error": f"no such control route: {path}"})

    def control_post(self, path: str) -> None:
        """``POST /__sim/state`` (change modes, timers, cap) and ``POST /__sim/restart``."""
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
