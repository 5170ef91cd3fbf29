"""The built-in proxy end to end: real ``aceorch serve`` (and ``aceorch proxy``) processes, engine containers that
play an ffmpeg-made H.264 file, and real clients (ffprobe, ffmpeg, HTTP readers) on loopback."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from orchestrator_proc import Orchestrator
from viewers import Reader, StandaloneProxy, client, sim_state, sim_update, stalled_viewer

from support import async_wait_until, wait_until

pytestmark = pytest.mark.docker

CONTENT = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"


def channel(n: int) -> str:
    """The content id of test channel ``n``."""
    return f"{n:040x}"


def url(port: int, content: str = CONTENT, **extra: str) -> str:
    """The proxy URL a player opens."""
    query = "".join(f"&{k}={v}" for k, v in extra.items())
    return f"http://127.0.0.1:{port}/ace/getstream?id={content}{query}"


async def get_json(base: str, path: str, headers: dict[str, str] | None = None) -> Any:
    """One JSON read that does not block the event loop (the viewers keep reading meanwhile)."""
    async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers or {}) as c:
        resp = await c.get(path)
        resp.raise_for_status()
        return resp.json()


async def engines(o: Orchestrator) -> list[dict[str, Any]]:
    """The orchestrator's engines."""
    out: list[dict[str, Any]] = await get_json(f"http://127.0.0.1:{o.port}", "/engines", o.auth)
    return out


# -- a real player decodes ---------------------------------------------------------------------------------------
def test_ffprobe_sees_h264_and_ffmpeg_decodes_without_errors(orch: Callable[..., Orchestrator]) -> None:
    o = orch(MIN_REPLICAS="0", MIN_FREE_REPLICAS="0")
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json",
                            url(o.port, pid="ignored-by-the-proxy")],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert [s["codec_name"] for s in json.loads(probe.stdout)["streams"]] == ["h264"]
    decode = subprocess.run(["ffmpeg", "-v", "error", "-i", url(o.port), "-t", "5", "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60)
    assert decode.returncode == 0 and decode.stderr == "", decode.stderr
    # A viewer who joins the live stream decodes cleanly too (it starts at a key frame's PAT).
    holder = subprocess.Popen(["curl", "-s", "-o", "/dev/null", "-m", "20", url(o.port)])
    try:
        time.sleep(1.5)  # the holder is mid-stream: the next viewer joins a live session
        joined = subprocess.run(["ffmpeg", "-v", "error", "-i", url(o.port), "-t", "3", "-f", "null", "-"],
                                capture_output=True, text=True, timeout=60)
        assert joined.returncode == 0 and joined.stderr == "", joined.stderr
        [engine] = o.engines()
        counters = sim_state(engine["host"], engine["port"])["counters"]
        assert counters["sessions_opened"] >= 1
    finally:
        holder.kill()
        holder.wait()


# -- fan-out -----------------------------------------------------------------------------------------------------
async def fan_out(proxy_port: int, o: Orchestrator, *, viewers: int, window_s: float,
                  proxy_base: str | None = None) -> dict[str, Any]:
    """``viewers`` clients and one stalled client on one stream; bytes per client against the engine's sent bytes
    over ``window_s``. Returns the figures."""
    base = proxy_base or f"http://127.0.0.1:{proxy_port}"
    async with client() as c:
        readers = [Reader(c, url(proxy_port)).start() for _ in range(viewers)]
        await async_wait_until(lambda: all(r.bytes > 0 for r in readers), timeout=60, what="every viewer's bytes")
        stalled = await asyncio.to_thread(stalled_viewer, proxy_port, f"/ace/getstream?id={CONTENT}")
        try:
            [engine] = await engines(o)
            host, port = engine["host"], engine["port"]
            state0 = await asyncio.to_thread(sim_state, host, port)
            before = [r.bytes for r in readers]
            await asyncio.sleep(window_s)
            state1 = await asyncio.to_thread(sim_state, host, port)
            after = [r.bytes for r in readers]
            streams = await get_json(base, "/proxy/streams", o.auth)
        finally:
            stalled.close()
            for r in readers:
                await r.stop()
    sent = state1["counters"]["bytes_streamed"] - state0["counters"]["bytes_streamed"]
    got = [a - b for a, b in zip(after, before, strict=True)]
    return {"sent": sent, "got": got, "state": state1, "streams": streams, "readers": readers,
            "engine": engine}


def check_fan_out(figures: dict[str, Any], viewers: int) -> None:
    """One engine playback session; every viewer got at least 98 % of what the engine sent; the stalled one was
    disconnected without costing the others."""
    state = figures["state"]
    assert state["counters"]["sessions_opened"] == 1, state["counters"]
    assert state["counters"]["requests"]["playback"] == 1, state["counters"]
    assert len(state["sessions"]) == 1 and state["sessions"][0]["readers"] == 1
    sent, got = figures["sent"], figures["got"]
    assert sent > 0
    ratios = sorted(g / sent for g in got)
    print(f"\nfan-out: {viewers} viewers, engine sent {sent} B in the window; per-viewer ratio min "
          f"{ratios[0]:.4f} median {ratios[len(ratios) // 2]:.4f} max {ratios[-1]:.4f}")
    assert ratios[0] >= 0.98, ratios[:5]
    assert all(r.error is None for r in figures["readers"]), [r.error for r in figures["readers"] if r.error]
    [stream] = figures["streams"]
    assert stream["stalled"] >= 1, stream  # the stalled viewer was disconnected within the window
    assert stream["clients_total"] == viewers + 1


async def test_fifty_viewers_share_one_engine_session(orch: Callable[..., Orchestrator]) -> None:
    o = orch(MIN_REPLICAS="0", MIN_FREE_REPLICAS="0", PROXY_CLIENT_STALL_S="3")
    figures = await fan_out(o.port, o, viewers=50, window_s=20)
    check_fan_out(figures, 50)


async def test_standalone_proxy_fans_out_for_a_separate_orchestrator(
    orch: Callable[..., Orchestrator], standalone: Callable[..., StandaloneProxy],
) -> None:
    o = orch(MIN_REPLICAS="0", MIN_FREE_REPLICAS="0")
    p = standalone(o, PROXY_CLIENT_STALL_S="3")
    figures = await fan_out(p.port, o, viewers=50, window_s=20)
    check_fan_out(figures, 50)
    # The orchestrator saw the stream through its events API.
    streams = o.client.get("/streams").json()
    assert [s["key"] for s in streams] == [CONTENT] and streams[0]["labels"]["proxy"] == "aceorch"


# -- channels and engines ----------------------------------------------------------------------------------------
async def test_ten_channels_use_ten_engines_never_eleven(orch: Callable[..., Orchestrator]) -> None:
    o = orch(MIN_REPLICAS="0", MIN_FREE_REPLICAS="0", MAX_REPLICAS="12", MAX_STREAMS_PER_ENGINE="1")
    most = 0
    async with client() as c:
        readers = [Reader(c, url(o.port, channel(i))).start() for i in range(10)]
        deadline = time.monotonic() + 90
        while not all(r.bytes > 0 for r in readers):
            assert time.monotonic() < deadline, [(r.status, r.bytes, r.error) for r in readers]
            most = max(most, len(await engines(o)))
            await asyncio.sleep(0.2)
        for _ in range(10):
            most = max(most, len(await engines(o)))
            await asyncio.sleep(0.2)
        live = await engines(o)
        for r in readers:
            await r.stop()
    assert most == 10 and len(live) == 10
    assert sorted(len(e["streams"]) for e in live) == [1] * 10


async def test_the_sixth_channel_over_max_replicas_is_a_503_with_retry_after(
    orch: Callable[..., Orchestrator],
) -> None:
    o = orch(MIN_REPLICAS="0", MIN_FREE_REPLICAS="0", MAX_REPLICAS="5", MAX_STREAMS_PER_ENGINE="1")
    async with client() as c:
        readers = [Reader(c, url(o.port, channel(i))).start() for i in range(5)]
        await async_wait_until(lambda: all(r.bytes > 0 for r in readers), timeout=90, what="five channels")
        begin = time.monotonic()
        resp = await c.get(url(o.port, channel(6)))
        took = time.monotonic() - begin
        for r in readers:
            await r.stop()
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.json()["code"] == "max_capacity"
    assert took < 10  # an answer, never a hang


# -- linger --------------------------------------------------------------------------------------------------
async def test_linger_keeps_the_session_for_a_quick_return_then_stops_it(orch: Callable[..., Orchestrator]) -> None:
    o = orch(MIN_REPLICAS="0", MIN_FREE_REPLICAS="0", PROXY_LINGER_S="4", AUTO_DELETE="true",
             ENGINE_GRACE_PERIOD_S="5")
    async with client() as c:
        first = Reader(c, url(o.port)).start()
        await async_wait_until(lambda: first.bytes > 100_000, timeout=60, what="the first viewer's bytes")
        await first.stop()
        await asyncio.sleep(1.0)  # within the linger
        back = Reader(c, url(o.port)).start()
        await async_wait_until(lambda: back.first_byte_s is not None, timeout=10, what="bytes for the return")
        await back.stop()
    assert back.first_byte_s is not None and back.first_byte_s < 0.1, back.first_byte_s
    [engine] = await engines(o)
    assert sim_state(engine["host"], engine["port"])["counters"]["sessions_opened"] == 1
    # The last viewer left: after the linger the session is stopped and the stream ends with no_viewers ...
    stream = wait_until(lambda: [s for s in o.client.get("/streams").json() if s["status"] == "ended"],
                        timeout=15, what="the stream ended")[0]
    assert stream["end_reason"] == "no_viewers"
    # It was stopped through the engine's command_url (the engine is still there: ENGINE_GRACE_PERIOD_S).
    wait_until(lambda: sim_state(engine["host"], engine["port"])["counters"]["sessions_stopped"] == 1, timeout=5,
               what="the engine session stopped by method=stop")
    # ... and AUTO_DELETE removes the idle engine.
    wait_until(lambda: not o.engines(), timeout=30, what="the idle engine auto-deleted")


# -- failover ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["hang", "kill"])
async def test_failover_keeps_five_viewers_connected(orch: Callable[..., Orchestrator], fault: str) -> None:
    o = orch(MIN_REPLICAS="0", MIN_FREE_REPLICAS="0", PROXY_UPSTREAM_STALL_S="2",
             PROXY_UPSTREAM_START_TIMEOUT_S="3", PROXY_CLIENT_STALL_S="60")
    async with client() as c:
        readers = [Reader(c, url(o.port)).start() for _ in range(5)]
        await async_wait_until(lambda: all(r.bytes > 100_000 for r in readers), timeout=60, what="five viewers")
        [engine] = await engines(o)
        if fault == "hang":
            await asyncio.to_thread(sim_update, engine["host"], engine["port"],
                                    {"engine_mode": "hang", "content_modes": {"*": "stall:0"}})
        else:
            await asyncio.to_thread(subprocess.run, ["docker", "kill", engine["container_id"]],
                                    capture_output=True, timeout=30, check=True)
        faulted = time.monotonic()
        marks = [r.bytes for r in readers]

        async def moved() -> bool:
            streams = await get_json(f"http://127.0.0.1:{o.port}", "/proxy/streams", o.auth)
            return bool(streams) and streams[0]["failovers"] >= 1 and streams[0]["upstream_state"] == "streaming"

        await async_wait_until(moved, timeout=60, what="the stream moved to another engine")
        await async_wait_until(lambda: all(r.bytes > m + 50_000 for r, m in zip(readers, marks, strict=True)),
                               timeout=30, what="bytes flowing again to every viewer")
        recovered = time.monotonic() - faulted
        [stream] = await get_json(f"http://127.0.0.1:{o.port}", "/proxy/streams", o.auth)
        assert all(not r.ended and r.error is None for r in readers), [(r.ended, r.error) for r in readers]
        gaps = [round(r.max_gap_s, 2) for r in readers]
        for r in readers:
            await r.stop()
    print(f"\nfailover ({fault}): bytes again after {recovered:.2f} s; proxy gap {stream['gaps_ms']} ms; "
          f"largest gap seen by a viewer {max(gaps)} s")
    assert stream["gaps_ms"], stream
    assert stream["engine"]["container_id"] != engine["container_id"]
    if fault == "hang":
        # The hung engine was reported to health: unhealthy at once (then replaced by the pool).
        def reported() -> bool:
            old = [e for e in o.engines() if e["container_id"] == engine["container_id"]]
            return not old or old[0]["health_status"] == "unhealthy"

        wait_until(reported, timeout=10, what="the hung engine unhealthy")
