"""The engine simulator's HTTP API: envelopes, session states, playback, HLS, supersession, the cap."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from simtools import SimProcess

from aceorch.sim import engine, mpegts
from support import wait_until

CID = "90f7" + "a" * 32 + "9373"
CID2 = "0a48" + "b" * 32 + "8141"

StartEngine = Callable[..., SimProcess]


def start_session(sim: SimProcess, content: str = CID, **params: str) -> dict[str, Any]:
    query = {"format": "json", "id": content, "pid": "p-" + content[:4], **params}
    response = sim.get("/ace/getstream", params=query)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["error"] is None, body
    response_body: dict[str, Any] = body["response"]
    return response_body


def path_of(url: str) -> str:
    split = urllib.parse.urlsplit(url)
    return split.path + ("?" + split.query if split.query else "")


def stat(sim: SimProcess, session: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = sim.get(path_of(session["stat_url"])).json()
    return result


def test_version_status_and_network_envelopes(start_engine: StartEngine) -> None:
    sim = start_engine()
    version = sim.get("/webui/api/service", params={"method": "get_version", "format": "json"})
    assert version.headers["Server"].startswith("BaseHTTP/0.3 Python/2.7.")
    assert version.json() == {
        "result": {"code": 3017000, "platform": "linux", "version": "3.1.70"},
        "error": None,
    }
    jsonp = sim.get("/webui/api/service", params={"method": "get_version", "format": "jsonp", "callback": "cb"})
    assert jsonp.text.startswith('cb({"result": {') and jsonp.text.endswith("});")
    status = sim.get("/server/api", params={"api_version": "3", "method": "get_status"}).json()
    assert status == {"result": {"playlist_loaded": True, "version": version.json()["result"]}}
    network = sim.get("/server/api", params={"api_version": "3", "method": "get_network_connection_status"})
    assert network.json() == {"result": {"connected": True}}
    denied = sim.get("/server/api", params={"api_version": "3", "method": "get_version"}).json()
    assert denied == {"result": None, "error": "access denied"}
    unknown = sim.get("/server/api", params={"api_version": "3", "method": "nope"}).json()
    assert unknown["error"] == "unknown method"
    counters = sim.state()["counters"]["requests"]
    assert (counters["get_version"], counters["get_status"], counters["network"]) == (2, 1, 1)


def test_playlist_loaded_turns_true_after_the_delay(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_PLAYLIST_DELAY_S": "0.6"})

    def loaded() -> bool:
        result: bool = sim.get("/server/api?api_version=3&method=get_status").json()["result"]["playlist_loaded"]
        return result

    assert loaded() is False
    assert sim.get("/webui/api/service?method=get_version").json()["result"]["version"] == "3.1.70"
    wait_until(loaded, timeout=5)


def test_getstream_builds_absolute_urls_from_the_host_header(start_engine: StartEngine) -> None:
    sim = start_engine()
    response = sim.get(
        "/ace/getstream", params={"format": "json", "id": CID, "pid": "x"}, headers={"Host": "gluetun:19004"}
    ).json()["response"]
    infohash = engine.derive_infohash(CID)
    assert response["infohash"] == infohash != CID
    assert response["playback_url"].startswith(f"http://gluetun:19004/ace/r/{infohash}/")
    token = response["playback_url"].rsplit("/", 1)[1]
    assert len(token) == 32
    assert response["stat_url"] == f"http://gluetun:19004/ace/stat/{infohash}/{token}"
    assert response["command_url"] == f"http://gluetun:19004/ace/cmd/{infohash}/{token}"
    assert len(response["playback_session_id"]) == 40 and response["playback_session_id"] != token
    assert (response["is_live"], response["is_encrypted"], response["client_session_id"]) == (1, 0, -1)
    assert all(type(response[key]) is int for key in ("is_live", "is_encrypted", "client_session_id"))


def test_session_goes_idle_prebuf_dl_then_stop_makes_it_unknown(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_TIME_TO_DL_S": "0.8"})
    session = start_session(sim)
    first = stat(sim, session)
    assert first["error"] is None
    assert first["response"]["status"] == "idle"
    assert first["response"]["peers"] == 0
    prebuf = wait_until(lambda: (s := stat(sim, session)["response"])["status"] == "prebuf" and s)
    assert prebuf["peers"] > 0 and "livepos" not in prebuf
    dl = wait_until(lambda: (s := stat(sim, session)["response"])["status"] == "dl" and s)
    assert dl["speed_down"] > 0 and dl["downloaded"] > 0 and dl["uploaded"] > 0
    assert all(isinstance(dl[key], int) for key in ("peers", "speed_down", "speed_up", "downloaded", "uploaded"))
    assert dl["playback_session_id"] == session["playback_session_id"]
    assert all(isinstance(value, str) for value in dl["livepos"].values())
    later = wait_until(lambda: (s := stat(sim, session)["response"])["downloaded"] > dl["downloaded"] and s)
    assert later["status"] == "dl"

    stop = sim.get(path_of(session["command_url"]), params={"method": "stop"})
    assert stop.json() == {"response": "ok", "error": None}
    assert stat(sim, session) == {"response": None, "error": "unknown playback session id"}
    again = sim.get(path_of(session["command_url"]), params={"method": "stop"}).json()
    assert again == {"response": None, "error": "unknown playback session id"}
    state = sim.state()
    assert state["sessions"] == []
    assert state["counters"]["sessions_opened"] == 1
    assert state["counters"]["sessions_stopped"] == 1
    assert state["counters"]["stops_unknown_session"] == 1


def test_getstream_without_parameters_is_http_500(start_engine: StartEngine) -> None:
    sim = start_engine()
    response = sim.get("/ace/getstream")
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "text/plain"


def test_raw_getstream_redirects_to_the_playback_url(start_engine: StartEngine) -> None:
    sim = start_engine()
    response = sim.get("/ace/getstream", params={"id": CID})
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{sim.base}/ace/r/{engine.derive_infohash(CID)}/")


def test_infohash_start_keeps_the_infohash(start_engine: StartEngine) -> None:
    sim = start_engine()
    infohash = "c" * 40
    response = sim.get("/ace/getstream", params={"format": "json", "infohash": infohash.upper()}).json()
    assert response["response"]["infohash"] == infohash


def test_source_precedence_and_infohash_derivation() -> None:
    both = engine.pick_source({"infohash": "c" * 40, "id": CID, "url": "http://x/y.torrent"})
    assert both is not None and both.kind == "id" and both.content_id == CID
    assert engine.derive_infohash(CID.upper()) == engine.derive_infohash(CID)
    by_url = engine.pick_source({"url": "http://x/y.torrent", "magnet": "magnet:?xt=urn:btih:" + "d" * 40})
    assert by_url is not None and by_url.kind == "url"
    magnet = engine.pick_source({"magnet": "magnet:?xt=urn:btih:" + "D" * 40})
    assert magnet is not None and magnet.infohash == "d" * 40
    malformed = engine.pick_source({"id": "not-a-hash"})
    assert malformed is not None and not malformed.valid
    assert engine.pick_source({"pid": "x"}) is None


def test_progressive_playback_waits_for_dl_then_streams_ts_packets(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_TIME_TO_DL_S": "1.5"})
    session = start_session(sim)
    # No response headers before dl: a short read timeout expires.
    with pytest.raises(httpx.ReadTimeout):
        sim.get(path_of(session["playback_url"]), timeout=httpx.Timeout(5, read=0.3))
    wait_until(lambda: stat(sim, session)["response"]["status"] == "dl")
    redirect = sim.get(path_of(session["playback_url"]))
    assert redirect.status_code == 302
    content_url = redirect.headers["Location"]
    assert content_url.startswith(f"{sim.base}/content/{session['infohash']}/")
    received = bytearray()
    with sim.client.stream("GET", path_of(content_url)) as stream:
        assert stream.status_code == 200
        for chunk in stream.iter_bytes():
            received += chunk
            if len(received) >= 600 * mpegts.PACKET_SIZE:
                break
    whole = len(received) // mpegts.PACKET_SIZE * mpegts.PACKET_SIZE
    assert whole >= 600 * mpegts.PACKET_SIZE
    assert all(received[i] == mpegts.SYNC_BYTE for i in range(0, whole, mpegts.PACKET_SIZE))
    # The server counts a chunk after sending it: the count may trail what the client already holds.
    wait_until(lambda: sim.state()["counters"]["bytes_streamed"] >= whole)


def test_a_second_concurrent_reader_is_refused(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_TIME_TO_DL_S": "0.2"})
    session = start_session(sim)
    wait_until(lambda: stat(sim, session)["response"]["status"] == "dl")
    content = path_of(sim.get(path_of(session["playback_url"])).headers["Location"])
    with sim.client.stream("GET", content) as first:
        assert first.status_code == 200
        # Keep the iterator referenced: a dropped one is finalised at once, and httpcore closes the connection
        # on that GeneratorExit, which frees the engine's reader slot before the second request arrives.
        chunks = first.iter_bytes()
        next(chunks)
        # Read only the status line and headers: a wrongly served second reader would be an endless body.
        with sim.client.stream("GET", content) as second:
            assert second.status_code == 500, f"second reader served; engine state: {sim.state()['sessions']}"
            assert second.headers["Content-Type"] == "text/plain"
    # Once the first reader hangs up, the slot frees and a new reader is served.
    wait_until(lambda: sim.state()["sessions"][0]["readers"] == 0)
    with sim.client.stream("GET", content) as third:
        assert third.status_code == 200


def test_stop_ends_a_running_progressive_stream(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_TIME_TO_DL_S": "0.2"})
    session = start_session(sim)
    wait_until(lambda: stat(sim, session)["response"]["status"] == "dl")
    content = path_of(sim.get(path_of(session["playback_url"])).headers["Location"])
    ended = threading.Event()
    with sim.client.stream("GET", content) as stream:
        iterator = stream.iter_bytes()
        next(iterator)
        assert sim.get(path_of(session["command_url"]), params={"method": "stop"}).json()["response"] == "ok"

        def drain() -> None:
            for _ in iterator:
                pass
            ended.set()

        threading.Thread(target=drain, daemon=True).start()
        assert ended.wait(5), "the stream kept going after stop"


def test_hls_manifest_playlist_and_segments(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_TIME_TO_DL_S": "0.2"})
    body = sim.get("/ace/manifest.m3u8", params={"format": "json", "id": CID, "pid": "h"}).json()
    session = body["response"]
    assert session["playback_url"].endswith(".m3u8")
    assert "/ace/m/" in session["playback_url"]
    playlist = sim.get(path_of(session["playback_url"]))
    assert playlist.status_code == 200
    lines = playlist.text.splitlines()
    assert lines[:2] == ["#EXTM3U", "#EXT-X-VERSION:3"]
    segments = [line for line in lines if line.startswith("http://")]
    assert segments and segments[0].startswith(f"{sim.base}/ace/c/{session['infohash']}/")
    first = sim.get(path_of(segments[0]))
    second = sim.get(path_of(segments[0]))
    assert first.status_code == 200 and first.content == second.content
    assert len(first.content) % mpegts.PACKET_SIZE == 0 and first.content[0] == mpegts.SYNC_BYTE
    # A newer session for the same content makes the old playlist 403; stop makes the new one 500.
    newer = sim.get("/ace/manifest.m3u8", params={"format": "json", "id": CID, "pid": "h2"}).json()["response"]
    assert sim.get(path_of(session["playback_url"])).status_code == 403
    sim.get(path_of(newer["command_url"]), params={"method": "stop"})
    assert sim.get(path_of(newer["playback_url"])).status_code == 500
    raw = sim.get("/ace/manifest.m3u8", params={"id": CID2})
    assert raw.status_code == 302 and raw.headers["Location"].endswith(".m3u8")


def test_a_new_start_for_the_same_content_supersedes_the_old_session(start_engine: StartEngine) -> None:
    sim = start_engine()
    old = start_session(sim, CID, pid="one")
    other = start_session(sim, CID2, pid="two")
    new = start_session(sim, CID, pid="three")
    assert new["playback_session_id"] != old["playback_session_id"]
    assert stat(sim, old)["error"] == "unknown playback session id"
    assert sim.get(path_of(old["command_url"]), params={"method": "stop"}).json()["error"] == (
        "unknown playback session id"
    )
    assert stat(sim, new)["error"] is None
    assert stat(sim, other)["error"] is None
    state = sim.state()
    assert state["counters"]["sessions_superseded"] == 1
    assert sorted(s["pid"] for s in state["sessions"]) == ["three", "two"]


def test_session_cap_rejects_new_content_after_a_delay(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_MAX_SESSIONS": "1", "SIM_TIME_SCALE": "0.2"})
    start_session(sim, CID)
    started = time.monotonic()
    rejected = sim.get("/ace/getstream", params={"format": "json", "id": CID2}).json()
    assert time.monotonic() - started >= 0.2 * 0.9
    assert rejected == {"response": None, "error": "simulator session cap reached"}
    # The same content supersedes rather than counting twice.
    assert start_session(sim, CID)["infohash"] == engine.derive_infohash(CID)
    counters = sim.state()["counters"]
    assert counters["cap_rejections"] == 1
    sim.post_state({"max_sessions": 0})
    start_session(sim, CID2)
    assert len(sim.state()["sessions"]) == 2


def test_sessions_without_readers_expire(start_engine: StartEngine) -> None:
    sim = start_engine({"SIM_SESSION_IDLE_S": "0.3"})
    session = start_session(sim)
    wait_until(lambda: sim.state()["counters"]["sessions_expired"] == 1, timeout=5)
    assert stat(sim, session)["error"] == "unknown playback session id"


def test_clients_outside_private_ranges_need_bind_all() -> None:
    allowed = engine.client_allowed
    assert allowed("127.0.0.1") and allowed("10.1.2.3") and allowed("172.20.0.5") and allowed("192.168.1.9")
    assert not allowed("8.8.8.8") and not allowed("172.32.0.1")
    assert allowed("::ffff:192.168.1.2") and allowed("::1")


def test_mpegts_sections_carry_valid_crcs() -> None:
    data = mpegts.TSGenerator().chunk(5)
    assert len(data) == 5 * mpegts.PACKET_SIZE
    pat = data[: mpegts.PACKET_SIZE]
    section_length = ((pat[6] & 0x0F) << 8) | pat[7]
    section = pat[5 : 5 + 3 + section_length]
    assert mpegts.crc32_mpeg2(section) == 0  # a section including its CRC checks to zero
    ccs = [data[i * mpegts.PACKET_SIZE + 3] & 0x0F for i in range(2, 5)]
    assert ccs == [0, 1, 2]
