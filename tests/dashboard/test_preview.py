"""The panel's stream preview in headless Debian Chromium: "play" on a stream row opens its HLS from the built-in
proxy in a <video> (hls.js); where the browser cannot decode H.264 the preview says why."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import httpx
import pytest
from aceorch_live import API_KEY, LiveServer
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

CONTENT = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
H264 = 'video/mp4; codecs="avc1.42E01E"'


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


def test_play_opens_the_hls_stream_in_a_video_element(live: Callable[..., LiveServer], page: Page) -> None:
    srv = live(proxy_linger_s=60)
    assert httpx.get(f"{srv.url}/ace/manifest.m3u8?id={CONTENT}", timeout=60).status_code == 200
    page.goto(f"{srv.url}/panel?key={API_KEY}")
    button = page.get_by_test_id("stream-play")
    expect(button).to_have_count(1, timeout=15_000)
    button.click()
    expect(page.get_by_test_id("preview")).to_be_visible()
    h264 = page.evaluate(f"() => !!window.MediaSource && MediaSource.isTypeSupported('{H264}')")
    if h264:
        page.wait_for_function("() => document.querySelector('[data-testid=preview-video]').currentTime > 1.5",
                               timeout=30_000)
        assert page.get_by_test_id("preview").get_attribute("data-playable") == "yes"
    else:
        # Debian's Chromium has no proprietary codecs: its MSE cannot take H.264, and the preview says so.
        assert page.get_by_test_id("preview").get_attribute("data-playable") == "no"
        expect(page.get_by_test_id("preview-message")).to_contain_text("do not decode H.264")
        expect(page.get_by_test_id("preview-message")).to_contain_text(f"/ace/manifest.m3u8?id={CONTENT}")
    print(f"\nChromium MSE H.264: {h264}")
    page.get_by_test_id("preview-close").click()
    expect(page.get_by_test_id("preview")).to_be_hidden()
