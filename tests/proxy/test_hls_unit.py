"""The HLS segmenter and the M3U rewriting, without Docker: an ffmpeg-made H.264 file cut into segments."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from aceorch.proxy.hls import Segmenter
from aceorch.proxy.playlist import entry_source, rewrite_m3u

ID1 = "a" * 40
ID2 = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def ts_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """10 s of H.264 at 25 fps with a key frame every second, as MPEG-TS."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing: scripts/ensure-system.sh installs it", pytrace=False)
    out = tmp_path_factory.mktemp("hls") / "media.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "10",
                    "-c:v", "libx264", "-g", "25", "-f", "mpegts", str(out)], check=True, timeout=120)
    return out.read_bytes()


def test_segments_start_at_a_pat_last_about_two_seconds_and_keep_every_byte(ts_file: bytes) -> None:
    seg = Segmenter(keep=100)
    for i in range(0, len(ts_file), 188 * 37):
        seg.feed(ts_file[i:i + 188 * 37])
    segments = list(seg.segments)
    assert len(segments) == 4  # the last partial one is still open
    assert all(s.data[3] & 0x20 == 0 for s in segments)  # plain PAT packets
    assert all(s.data[:3] == b"\x47\x40\x00" for s in segments)
    assert all(1.8 <= s.duration <= 2.2 for s in segments)
    assert [s.seq for s in segments] == [0, 1, 2, 3]
    joined = b"".join(s.data for s in segments)
    assert ts_file[ts_file.find(b"\x47\x40\x00"):].startswith(joined)


def test_each_segment_decodes_on_its_own(ts_file: bytes, tmp_path: Path) -> None:
    seg = Segmenter(keep=100)
    seg.feed(ts_file)
    for s in seg.segments:
        path = tmp_path / f"{s.seq}.ts"
        path.write_bytes(s.data)
        run = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                              "frame=key_frame", "-of", "csv=p=0", str(path)],
                             capture_output=True, text=True, timeout=60, check=True)
        frames = [f.strip(",") for f in run.stdout.split()]
        assert frames[0] == "1" and len(frames) >= 48  # starts on a key frame: every frame decodes on its own


def test_the_cache_keeps_the_newest_segments_and_the_playlist_lists_a_window(ts_file: bytes) -> None:
    seg = Segmenter(keep=3)
    seg.feed(ts_file + ts_file)
    assert seg.cut >= 8
    assert [s.seq for s in seg.segments] == [seg.cut - 3, seg.cut - 2, seg.cut - 1]
    assert seg.find(seg.cut - 4) is None and seg.find(seg.cut - 1) is not None
    text = seg.playlist(lambda n: f"hls/x/{n}.ts", window=2)
    lines = text.splitlines()
    assert lines[:2] == ["#EXTM3U", "#EXT-X-VERSION:3"]
    assert lines[2] in ("#EXT-X-TARGETDURATION:2", "#EXT-X-TARGETDURATION:3")
    assert lines[3] == f"#EXT-X-MEDIA-SEQUENCE:{seg.cut - 2}"
    assert [line for line in lines if line.startswith("hls/")] == [f"hls/x/{seg.cut - 2}.ts", f"hls/x/{seg.cut - 1}.ts"]
    # The looped file's PCR jumps back: that is not counted as time.
    assert all(s.duration < 3 for s in seg.segments)


def test_a_discontinuity_drops_the_partial_segment_and_is_marked(ts_file: bytes) -> None:
    seg = Segmenter(keep=100)
    seg.feed(ts_file[:188 * 300])
    cut = seg.cut
    seg.discontinuity()
    seg.feed(ts_file[188 * 5:])  # not at a PAT: skipped up to the next one
    after = [s for s in seg.segments if s.seq >= cut]
    assert after[0].discontinuity and not any(s.discontinuity for s in after[1:])
    assert all(s.data[:3] == b"\x47\x40\x00" for s in after)


def test_entries_point_at_the_proxy_and_names_and_tvg_attributes_stay() -> None:
    source = (f'#EXTM3U url-tvg="http://epg/x.xml"\n#EXTINF:-1 tvg-id="one" tvg-logo="http://l/1.png" '
              f'group-title="News",Channel One\nacestream://{ID1}\r\n#EXTINF:-1 tvg-name="Two",Two\n{ID2.upper()}\n'
              f'#EXTINF:-1,Three\nhttp://127.0.0.1:6878/ace/getstream?infohash={ID2}\n'
              '#EXTINF:-1,Web\nhttp://example.org/live.m3u8\n')
    out = rewrite_m3u(source, "http://proxy:8000/")
    lines = out.splitlines()
    assert lines[0] == '#EXTM3U url-tvg="http://epg/x.xml"'
    assert lines[1] == '#EXTINF:-1 tvg-id="one" tvg-logo="http://l/1.png" group-title="News",Channel One'
    assert lines[2] == f"http://proxy:8000/ace/getstream?id={ID1}"
    assert lines[3] == '#EXTINF:-1 tvg-name="Two",Two'
    assert lines[4] == f"http://proxy:8000/ace/getstream?id={ID2}"
    assert lines[6] == f"http://proxy:8000/ace/getstream?infohash={ID2}"
    assert lines[8] == "http://example.org/live.m3u8"
    hls = rewrite_m3u(f"acestream://{ID1}", "http://p", hls=True, token="k&y")
    assert hls.splitlines() == ["#EXTM3U", f"http://p/ace/manifest.m3u8?id={ID1}&token=k%26y"]


def test_entry_source_reads_links_ids_and_engine_urls() -> None:
    assert entry_source(f"acestream://{ID1}/") == ("id", ID1)
    assert entry_source(f"  {ID1}  ") == ("id", ID1)
    assert entry_source(f"http://e:6878/ace/manifest.m3u8?id={ID1}&pid=1") == ("id", ID1)
    assert entry_source("#EXTINF:-1,x") is None
    assert entry_source("http://example.org/a.ts") is None


def test_the_simulator_cuts_its_media_file_into_segments_that_each_decode(ts_file: bytes, tmp_path: Path) -> None:
    from aceorch.sim.engine.playback import media_segments

    segments = media_segments(ts_file, 150)
    assert len(segments) >= 4
    assert b"".join(segments) == ts_file[ts_file.find(b"\x47\x40\x00"):]
    for n, data in enumerate(segments):
        path = tmp_path / f"sim{n}.ts"
        path.write_bytes(data)
        run = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and run.stderr == "", run.stderr
