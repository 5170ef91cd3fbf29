"""HLS through the embedded proxy against simulator engines of the process runtime (no Docker) that play an
ffmpeg-made H.264 file: a real ffmpeg decodes, the token is carried into segment URLs, idle HLS ends the stream."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "streams"))
from aceorch_live import LiveServer, live_server, live_settings  # noqa: E402

from support import wait_until  # noqa: E402

CONTENT = "0a4848271c91ce2d8965ce416267c25047dc8141"


@pytest.fixture(autouse=True)
def media_engines(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Engine processes inherit the environment: they loop an ffmpeg-made H.264 file at its own rate, playing after
    0.5 s."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing: scripts/ensure-system.sh installs it", pytrace=False)
    out = tmp_path_factory.mktemp("media") / "media.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "10",
                    "-c:v", "libx264", "-g", "25", "-f", "mpegts", str(out)], check=True, timeout=120)
    monkeypatch.setenv("SIM_TIME_TO_DL_S", "0.5")
    monkeypatch.setenv("SIM_MEDIA_FILE", str(out))
    monkeypatch.setenv("SIM_STREAM_KBPS", f"{out.stat().st_size / 10 / 1000:.2f}")  # the file's own rate


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``serve(**settings)``: an aceorch (process runtime) with those settings, stopped at teardown."""
    with ExitStack() as stack:
        yield lambda **overrides: stack.enter_context(live_server(live_settings(tmp_path, **overrides)))


def test_ffmpeg_decodes_hls_and_the_segments_are_shared(serve: Callable[..., LiveServer]) -> None:
    server = serve(proxy_linger_s=30)
    url = f"{server.url}/ace/manifest.m3u8?id={CONTENT}"
    run = subprocess.run(["ffmpeg", "-v", "error", "-i", url, "-t", "6", "-f", "framecrc", "-"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert sum(1 for line in run.stdout.splitlines() if line and not line.startswith("#")) >= 140
    playlist = httpx.get(url, timeout=30)
    assert playlist.status_code == 200 and playlist.headers["content-type"] == "application/vnd.apple.mpegurl"
    lines = playlist.text.splitlines()
    assert lines[0] == "#EXTM3U" and any(line.startswith("#EXT-X-MEDIA-SEQUENCE:") for line in lines)
    segments = [line for line in lines if line.startswith("hls/")]
    assert segments
    first = httpx.get(f"{server.url}/ace/{segments[-1]}", timeout=30)
    again = httpx.get(f"{server.url}/ace/{segments[-1]}", timeout=30)
    assert first.status_code == 200 and first.content[:3] == b"\x47\x40\x00" and first.content == again.content
    assert httpx.get(f"{server.url}/ace/hls/nope/1.ts", timeout=10).status_code == 404
    hls = server.get("/proxy/hls")
    assert hls["hls_streams"] == 1 and hls["live_streams"] == 1 and hls["segments_served"] >= 5
    [stream] = [s for s in server.get("/streams") if s["status"] == "started"]
    assert stream["key"] == CONTENT


def test_the_token_is_checked_and_carried_into_segment_urls(serve: Callable[..., LiveServer]) -> None:
    server = serve(proxy_api_key="tok-1", proxy_linger_s=30)
    assert httpx.get(f"{server.url}/ace/manifest.m3u8?id={CONTENT}", timeout=10).status_code == 401
    resp = httpx.get(f"{server.url}/ace/manifest.m3u8?id={CONTENT}&token=tok-1", timeout=60)
    assert resp.status_code == 200
    segments = [line for line in resp.text.splitlines() if line.startswith("hls/")]
    assert segments and all(line.endswith("?token=tok-1") for line in segments)
    assert httpx.get(f"{server.url}/ace/{segments[0].split('?')[0]}", timeout=10).status_code == 401
    got = httpx.get(f"{server.url}/ace/{segments[0]}", timeout=10)
    assert got.status_code == 200, (got.text, resp.text, server.get("/proxy/hls"))


def test_with_no_hls_request_for_the_linger_the_stream_ends(serve: Callable[..., LiveServer]) -> None:
    server = serve(proxy_linger_s=4)
    resp = httpx.get(f"{server.url}/ace/manifest.m3u8?id={CONTENT}", timeout=60)
    assert resp.status_code == 200
    [stream] = server.get("/streams")
    ended = wait_until(lambda: [s for s in server.get("/streams") if s["status"] == "ended"], timeout=20,
                       what="the stream ended")
    assert ended[0]["id"] == stream["id"] and ended[0]["end_reason"] == "no_viewers"
    assert server.get("/proxy/hls")["live_streams"] == 0


def test_a_posted_playlist_points_at_the_proxy(serve: Callable[..., LiveServer]) -> None:
    server = serve()
    body = f'#EXTM3U\n#EXTINF:-1 tvg-id="x",X\nacestream://{CONTENT}\n'
    resp = httpx.post(f"{server.url}/playlist.m3u", json={"m3u": body}, timeout=10)
    assert resp.status_code == 200
    assert resp.text.splitlines() == ["#EXTM3U", '#EXTINF:-1 tvg-id="x",X',
                                      f"{server.url}/ace/getstream?id={CONTENT}"]
    assert httpx.post(f"{server.url}/playlist.m3u", json={"x": 1}, timeout=10).status_code == 422
    assert httpx.get(f"{server.url}/playlist.m3u", timeout=10).status_code == 404  # no PLAYLIST_FILE
