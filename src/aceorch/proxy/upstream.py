"""The engine side of a proxy stream: start a playback session as JSON, read its bytes, stop it.

One playback session per content key: the engine allows one reader per session, and a second start of the same
content under another ``pid`` supersedes the first, so the proxy owns the ``pid`` (a fresh one per start).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from aceorch.models import Engine

__all__ = ["EngineSession", "UpstreamError", "start_session", "stop_session", "read_playback", "SOURCE_KEYS"]

#: Query parameters that name the content, in the engine's precedence order.
SOURCE_KEYS = ("content_id", "id", "infohash", "url", "magnet", "direct_url")
#: Parameters the proxy sets itself.
OWNED_KEYS = frozenset({"pid", "sid", "format", "token"})


class UpstreamError(Exception):
    """The engine refused or failed a stream start (its ``error`` text, or the HTTP failure)."""


@dataclass(frozen=True)
class EngineSession:
    """One playback session on one engine, with URLs addressed to the engine as the proxy reaches it."""

    engine: Engine
    playback_url: str
    stat_url: str
    command_url: str
    playback_session_id: str
    infohash: str
    is_live: bool


def _base(engine: Engine) -> str:
    return f"http://{engine.host}:{engine.port}"


def _rebase(engine: Engine, url: str) -> str:
    """The engine's URL with its host replaced by the address the proxy used (the engine builds it from Host)."""
    parts = urlsplit(url)
    return f"{_base(engine)}{parts.path}{'?' + parts.query if parts.query else ''}"


def engine_params(params: Mapping[str, str]) -> dict[str, str]:
    """The client's query without the parameters the proxy owns, plus ``format=json`` and a fresh ``pid``."""
    out = {k: v for k, v in params.items() if k not in OWNED_KEYS}
    out["format"] = "json"
    out["pid"] = uuid.uuid4().hex
    return out


async def start_session(
    http: httpx.AsyncClient, engine: Engine, params: Mapping[str, str], *, timeout: float,
    headers: Mapping[str, str] | None = None,
) -> EngineSession:
    """``GET /ace/getstream?format=json&...`` on the engine; raises UpstreamError (or TimeoutError)."""
    try:
        resp = await http.get(f"{_base(engine)}/ace/getstream", params=engine_params(params), timeout=timeout,
                              headers=dict(headers or {}))
    except httpx.TimeoutException as exc:
        raise TimeoutError(f"engine did not answer getstream within {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"getstream failed: {type(exc).__name__}: {exc}") from exc
    try:
        body = resp.json()
    except ValueError:
        raise UpstreamError(f"getstream answered HTTP {resp.status_code} without JSON") from None
    if not isinstance(body, dict) or body.get("error") or not isinstance(body.get("response"), dict):
        err = body.get("error") if isinstance(body, dict) else None
        raise UpstreamError(str(err or f"getstream answered HTTP {resp.status_code} without a session"))
    r = body["response"]
    playback = str(r.get("playback_url") or "")
    if not playback:
        raise UpstreamError("getstream gave no playback_url")
    stat = str(r.get("stat_url") or "")
    return EngineSession(
        engine=engine, playback_url=_rebase(engine, playback),
        stat_url=_rebase(engine, stat) if stat else "",
        command_url=_rebase(engine, str(r.get("command_url"))) if r.get("command_url") else "",
        playback_session_id=str(r.get("playback_session_id") or stat.rstrip("/").rsplit("/", 1)[-1]),
        infohash=str(r.get("infohash") or ""), is_live=bool(r.get("is_live", 1)),
    )


async def stop_session(http: httpx.AsyncClient, session: EngineSession, *, timeout: float = 3.0) -> bool:
    """Stop the session through its ``command_url`` (``method=stop``); whether the engine said ok."""
    if not session.command_url:
        return False
    try:
        resp = await http.get(session.command_url, params={"method": "stop"}, timeout=timeout)
        body = resp.json()
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(body, dict) and body.get("response") == "ok"


async def read_playback(
    http: httpx.AsyncClient, session: EngineSession, *, first_byte_timeout: float, stall_timeout: float,
) -> AsyncIterator[bytes]:
    """The session's MPEG-TS bytes as they arrive (redirects followed).

    Raises TimeoutError when the headers or the first bytes take longer than ``first_byte_timeout`` or the data
    then stops for ``stall_timeout``; httpx errors when the connection drops. Returns when the engine ends it.
    """
    timeout = httpx.Timeout(connect=5.0, read=first_byte_timeout, write=5.0, pool=5.0)
    try:
        async with asyncio.timeout(first_byte_timeout) as deadline:
            async with http.stream("GET", session.playback_url, timeout=timeout, follow_redirects=True) as resp:
                if resp.status_code != 200:
                    raise UpstreamError(f"playback answered HTTP {resp.status_code}")
                loop = asyncio.get_running_loop()
                async for chunk in resp.aiter_raw():
                    deadline.reschedule(loop.time() + stall_timeout)
                    yield chunk
                    deadline.reschedule(loop.time() + stall_timeout)
    except httpx.TimeoutException as exc:
        raise TimeoutError(str(exc) or "upstream read timed out") from exc
