"""The engine simulator's disk cache: a real directory that grows while it streams, shown in stat."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from simtools import SimProcess
from test_sim_engine_api import StartEngine, path_of, start_session, stat

from aceorch.sim.engine.cache import PIECE_BYTES, DiskCache
from support import wait_until


def _read_forever(sim: SimProcess, url: str, stop: threading.Event) -> None:
    with sim.client.stream("GET", url, timeout=30) as stream:
        for _ in stream.iter_bytes():
            if stop.is_set():
                return


def test_the_cache_grows_while_streaming_shows_in_stat_and_an_outside_clear_shows_too(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    sim = start_engine({"SIM_TIME_TO_DL_S": "0.5", "SIM_CACHE_DIR": str(cache)})
    session = start_session(sim)
    wait_until(lambda: stat(sim, session)["response"]["status"] == "dl")
    before = stat(sim, session)["response"]["disk_cache_stats"]
    assert before["active_inuse"] == 0 and before["disk_cache_limit"] == 64 << 20 and before["avail"] > 0

    content_url = sim.get(path_of(session["playback_url"])).headers["Location"]
    stop = threading.Event()
    reader = threading.Thread(target=_read_forever, args=(sim, path_of(content_url), stop), daemon=True)
    reader.start()
    try:
        grown = wait_until(lambda: (n := stat(sim, session)["response"]["disk_cache_stats"]["active_inuse"]) > 600_000
                           and n)
        on_disk = sum(f.stat().st_size for f in cache.iterdir())
        assert on_disk >= grown and all(f.name.startswith(session["infohash"]) for f in cache.iterdir())
        assert sim.state()["cache"]["dir"] == str(cache)
    finally:
        stop.set()
        reader.join(timeout=10)
    sim.get(path_of(session["command_url"]))  # stop: nothing writes any more

    for entry in cache.iterdir():  # what aceorch's clean-up does through docker exec
        entry.unlink()
    assert sim.state()["cache"]["bytes"] == 0


def test_the_cache_keeps_its_limit_and_a_temporary_directory_goes_at_close(tmp_path: Path) -> None:
    cache = DiskCache(None, limit_bytes=3 * PIECE_BYTES)
    chunk = b"x" * (PIECE_BYTES // 4)
    for _ in range(40):
        cache.store("ih", chunk)
    path = cache.path
    assert path is not None and os.path.isdir(path)
    assert 2 * PIECE_BYTES <= cache.size() <= 3 * PIECE_BYTES
    assert cache.stats()["active_inuse"] == cache.size()

    shutil.rmtree(path)  # the whole directory gone: it comes back on the next write
    cache.store("ih", chunk)
    assert cache.size() == len(chunk)
    cache.close()
    assert not os.path.exists(path)

    kept = DiskCache(str(tmp_path / "named"), limit_bytes=PIECE_BYTES)
    kept.store("ih", b"y" * 10)
    kept.close()  # a named directory is the operator's: it stays
    assert (tmp_path / "named").is_dir()
    assert DiskCache(None, limit_bytes=0).size() == 0
