"""M3U playlists for players: ``acestream://`` links and bare content ids rewritten into proxy URLs.

Every other line is kept as it is (``#EXTM3U`` with its attributes, ``#EXTINF`` names and ``tvg-*`` attributes,
``#EXTGRP``, ordinary URLs). Engine URLs (``…/ace/getstream?id=…`` or ``…/ace/manifest.m3u8?…``) are pointed
at the proxy too, so that a playlist written for one engine shares the fleet.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = ["rewrite_m3u", "entry_source"]

_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")


def entry_source(line: str) -> tuple[str, str] | None:
    """The (parameter, value) a playlist URL line names: ``id`` or ``infohash``; None for other lines."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.lower().startswith("acestream://"):
        ident = text[len("acestream://"):].split("?", 1)[0].strip("/")
        return ("id", ident.lower()) if ident else None
    if _HEX40.match(text):
        return "id", text.lower()
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.path in ("/ace/getstream", "/ace/manifest.m3u8"):
        query = parse_qs(parts.query)
        for name in ("content_id", "id", "infohash"):
            if query.get(name):
                return ("infohash" if name == "infohash" else "id"), query[name][0].lower()
    return None


def rewrite_m3u(text: str, base_url: str, *, hls: bool = False, token: str | None = None) -> str:
    """The playlist with every stream entry pointing at the proxy at ``base_url`` (TS, or HLS when ``hls``)."""
    path = "/ace/manifest.m3u8" if hls else "/ace/getstream"
    base = base_url.rstrip("/")
    out: list[str] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not any(line.strip().upper().startswith("#EXTM3U") for line in lines[:1]):
        out.append("#EXTM3U")
    for line in lines:
        found = entry_source(line)
        if found is None:
            out.append(line.rstrip())
            continue
        query = {found[0]: found[1]}
        if token:
            query["token"] = token
        out.append(f"{base}{path}?{urlencode(query)}")
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"
