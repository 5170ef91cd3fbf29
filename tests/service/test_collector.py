"""Stats collection: snapshots from the engine's stat_url, stale streams after three failures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from service_parts import Parts

from aceorch.models import StreamStart

PartsFactory = Callable[..., Awaitable[Parts]]

STAT = {"response": {"peers": 4, "speed_down": 257, "speed_up": 29, "downloaded": 1, "uploaded": 2,
                     "status": "dl", "disk_cache_stats": {"active_inuse": 1024}}, "error": None}



async def test_a_collection_keeps_a_snapshot_and_the_engine_cache_size(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    p.stats[engine.port] = STAT
    stream = await p.streams.started(StreamStart(engine_host="127.0.0.1", engine_port=engine.port,
                                                 key_type="infohash", key="ih", playback_session_id="pb",
                                                 stat_url="http://elsewhere/ace/stat/ih/pb"))
    await p.collector.collect_once()
    snaps = await p.streams.stats(stream.id, None)
    assert [(s.peers, s.speed_down, s.status) for s in snaps] == [(4, 257, "dl")]
    assert engine.cache_size_bytes == 1024 and stream.collect_failures == 0


async def test_three_failed_collections_make_a_stream_stale(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    stream = await p.streams.started(StreamStart(engine_host="127.0.0.1", engine_port=engine.port,
                                                 key_type="infohash", key="ih", playback_session_id="pb",
                                                 stat_url="http://x/ace/stat/ih/pb"))
    for _ in range(2):
        await p.collector.collect_once()
    assert (stream.status, stream.collect_failures) == ("started", 2)
    await p.collector.collect_once()
    assert (stream.status, stream.end_reason) == ("ended", "stale")
    assert [r["operation"] for r in p.ops("streams")][-3:] == ["stat_collection_failed", "stale_stream",
                                                               "stream_ended"]


async def test_a_stream_without_stat_url_ends_as_stale(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    stream = await p.streams.started(StreamStart(engine_host="127.0.0.1", engine_port=engine.port,
                                                 key_type="infohash", key="ih", playback_session_id="pb"))
    await p.collector.collect_once()
    assert (stream.status, stream.end_reason) == ("ended", "stale")
