"""HLS and playlists through the built-in proxy, end to end: a real ``aceorch serve``, engine containers that play an
ffmpeg-made H.264 file, and real clients (ffmpeg, ffprobe, HTTP readers)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from orchestrator_proc import Orchestrator
from viewers import Reader, client, sim_state

from support import async_wait_until

pytestmark = pytest.mark.docker

CONTENT = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"


@pytest.fixture(scope="module")
def paced_engines(media_engine_settings: Callable[..., dict[str, str]], media_file: Path) -> dict[str, str]:
    """Engines that play the 10 s file at its own rate (SIM_STREAM_KBPS: its bytes over its 10 s), as a live
    channel does."""
    kbps = media_file.stat().st_size / 10 / 1000
    return media_engine_settings(SIM_STREAM_KBPS=f"{kbps:.2f}")


@pytest.fixture
def orch_paced(paced_engines: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Orchestrator]]:
    """``orch_paced(**env)``: an ``aceorch serve`` whose engines play the file in real time; closed afterwards."""
    made: list[Orchestrator] = []

    def factory(**env: str) -> Orchestrator:
        o = Orchestrator(tmp_path / f"o{len(made)}", {**paced_engines, "AUTO_DELETE": "false", **env})
        o.cwd.mkdir(exist_ok=True)
        made.append(o)
        return o.start()

    yield factory
    for o in made:
        o.close()


def hls_url(port: int, content: str = CONTENT) -> str:
    """The proxy's HLS URL a player opens."""
    return f"http://127.0.0.1:{port}/ace/manifest.m3u8?id={content}"


def decode(url: str, seconds: float) -> tuple[int, int, str]:
    """ffmpeg reads ``url`` for ``seconds`` of media: (return code, frames decoded, its errors)."""
    run = subprocess.run(["ffmpeg", "-v", "error", "-i", url, "-t", str(seconds), "-f", "framecrc", "-"],
                         capture_output=True, text=True, timeout=120)
    frames = sum(1 for line in run.stdout.splitlines() if line and not line.startswith("#"))
    return run.returncode, frames, run.stderr


def counters(o: Orchestrator) -> tuple[dict[str, Any], dict[str, Any]]:
    """The only engine's simulator counters, and the proxy's HLS counters."""
    [engine] = o.engines()
    sim = sim_state(engine["host"], engine["port"])
    hls = o.client.get("/proxy/hls").json()
    return sim, hls


def test_ffmpeg_decodes_the_test_file_over_hls_through_the_proxy(orch_paced: Callable[..., Orchestrator]) -> None:
    o = orch_paced(MIN_REPLICAS="0", MIN_FREE_REPLICAS="0")
    code, frames, errors = decode(hls_url(o.port), 6)
    assert code == 0 and errors == "", errors
    assert frames >= 140  # 6 s at 25 fps, every frame decoded
    sim, hls = counters(o)
    assert sim["counters"]["sessions_opened"] == 1
    assert sim["counters"]["requests"]["hls"] == 0  # the proxy cuts the segments from the one progressive read
    assert hls["segments_served"] >= 3 and hls["segment_misses"] == 0


async def test_ten_hls_readers_share_one_engine_session_and_each_segment_is_cut_once(
        orch_paced: Callable[..., Orchestrator]) -> None:
    o = orch_paced(MIN_REPLICAS="0", MIN_FREE_REPLICAS="0")
    results = await asyncio.gather(*(asyncio.to_thread(decode, hls_url(o.port), 6) for _ in range(10)))
    for code, frames, errors in results:
        assert code == 0 and errors == "", errors
        assert frames >= 140
    status = o.client.get("/ace/status").json()  # before the engine's counters: it keeps sending meanwhile
    sim, hls = counters(o)
    c = sim["counters"]
    assert c["sessions_opened"] == 1 and c["requests"]["getstream"] == 1 and c["requests"]["playback"] == 1, c
    assert len(sim["sessions"]) == 1 and sim["sessions"][0]["readers"] == 1
    assert hls["hls_streams"] == 1
    # The segments were cut once from the one engine read and served from the cache to the ten readers.
    assert hls["segments_served"] >= 10 * 3 and hls["segment_misses"] == 0, hls
    print(f"\nten HLS readers: {hls['segments_served']} segments served, {hls['segments_cut']} cut, engine HLS "
          f"requests {c['requests']['hls']}")
    assert status["bytes_in"] <= c["bytes_streamed"]  # the proxy read the engine's bytes once, not per reader


async def test_a_ts_viewer_and_an_hls_viewer_of_one_channel_share_one_engine(
        orch_paced: Callable[..., Orchestrator]) -> None:
    o = orch_paced(MIN_REPLICAS="0", MIN_FREE_REPLICAS="0")
    async with client() as c:
        ts = Reader(c, f"http://127.0.0.1:{o.port}/ace/getstream?id={CONTENT}").start()
        await async_wait_until(lambda: ts.bytes > 100_000, timeout=60, what="the TS viewer's bytes")
        code, frames, errors = await asyncio.to_thread(decode, hls_url(o.port), 6)
        before = ts.bytes
        await async_wait_until(lambda: ts.bytes > before + 50_000, timeout=10, what="the TS viewer still reading")
        await ts.stop()
    assert code == 0 and errors == "" and frames >= 140, errors
    assert ts.error is None and ts.status == 200
    assert len(o.engines()) == 1
    sim, _ = counters(o)
    assert sim["counters"]["sessions_opened"] == 1 and sim["counters"]["sessions_superseded"] == 0


def test_the_playlist_of_a_three_channel_file_opens_entry_by_entry_in_ffprobe(
        orch_paced: Callable[..., Orchestrator], tmp_path: Path) -> None:
    channels = [f"{n:040x}" for n in (1, 2, 3)]
    source = tmp_path / "channels.m3u"
    source.write_text("#EXTM3U\n" + "".join(
        f'#EXTINF:-1 tvg-id="ch{n}" tvg-logo="http://logo/{n}.png",Channel {n}\nacestream://{cid}\n'
        for n, cid in enumerate(channels, 1)))
    o = orch_paced(MIN_REPLICAS="0", MIN_FREE_REPLICAS="0", PLAYLIST_FILE=str(source), MAX_STREAMS_PER_ENGINE="3")
    for fmt in ("", "?format=hls"):
        resp = o.client.get(f"/playlist.m3u{fmt}")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("audio/x-mpegurl")
        lines = resp.text.splitlines()
        assert lines[0] == "#EXTM3U"
        assert [line for line in lines if line.startswith("#EXTINF")] == [
            f'#EXTINF:-1 tvg-id="ch{n}" tvg-logo="http://logo/{n}.png",Channel {n}' for n in (1, 2, 3)]
        entries = [line for line in lines if line.startswith("http")]
        path = "/ace/manifest.m3u8" if fmt else "/ace/getstream"
        assert entries == [f"http://127.0.0.1:{o.port}{path}?id={cid}" for cid in channels]
        for entry in entries:
            probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                                    entry], capture_output=True, text=True, timeout=90)
            assert probe.returncode == 0 and set(probe.stdout.split()) == {"h264"}, (entry, probe.stderr)
    posted = o.client.post("/playlist.m3u?format=hls", json={"m3u": f"{channels[0]}\n"})
    assert posted.text.splitlines() == ["#EXTM3U", f"http://127.0.0.1:{o.port}/ace/manifest.m3u8?id={channels[0]}"]
