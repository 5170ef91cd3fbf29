"""Streams on engines aceorch does not manage are capped and expire; ended streams are pruned, after a restart too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from service_parts import Parts

from aceorch.errors import TooManyStreams
from aceorch.models import Stream, StreamStart, utcnow
from support import async_wait_until

PartsFactory = Callable[..., Awaitable[Parts]]


def spoofed(i: int) -> StreamStart:
    return StreamStart(engine_host="203.0.113.9", engine_port=1000 + i % 60000, key_type="infohash",
                       key=f"made-up-{i}", playback_session_id=f"pb-{i}")


def stored(sid: str, *, started_at: datetime, status: str = "started", ended_at: datetime | None = None,
           attached: bool = True, container_id: str = "c1") -> Stream:
    return Stream(id=sid, key_type="infohash", key=sid, container_id=container_id, playback_session_id=sid,
                  stat_url="", command_url="", is_live=True, started_at=started_at, status=status,
                  ended_at=ended_at, end_reason="ended" if status == "ended" else None, attached=attached)


async def test_two_thousand_spoofed_streams_keep_at_most_the_cap_and_the_rest_are_refused(
    parts: PartsFactory,
) -> None:
    p = await parts(max_unattached_streams=1000)
    kept = refused = 0
    for i in range(2000):
        try:
            await p.streams.started(spoofed(i))
            kept += 1
        except TooManyStreams as exc:
            refused += 1
            assert exc.retry_after_s >= 1 and "MAX_UNATTACHED_STREAMS" in exc.message
    assert (kept, refused) == (1000, 1000)
    assert p.streams.count() == 1000 and p.streams.count_started() == 1000
    assert any(r.get("operation") == "stream_refused" for r in p.ops("streams"))


async def test_a_managed_engine_still_gets_streams_when_the_cap_is_reached(parts: PartsFactory) -> None:
    p = await parts(max_unattached_streams=2)
    engine = await p.engine()
    for i in range(2):
        await p.streams.started(spoofed(i))
    with pytest.raises(TooManyStreams):
        await p.streams.started(spoofed(3))
    mine = await p.streams.started(StreamStart(engine_host="127.0.0.1", engine_port=engine.port,
                                               key_type="infohash", key="real", playback_session_id="pb"))
    assert mine.attached and mine.container_id == engine.container_id


async def test_unattached_streams_expire_after_their_ttl_and_are_forgotten(parts: PartsFactory) -> None:
    p = await parts(stream_unattached_ttl_s=1, max_unattached_streams=50)
    engine = await p.engine()
    attached = await p.streams.started(StreamStart(engine_host="127.0.0.1", engine_port=engine.port,
                                                   key_type="infohash", key="real", playback_session_id="pb"))
    for i in range(50):
        await p.streams.started(spoofed(i))
    assert p.streams.count() == 51
    await async_wait_until(lambda: p.streams.count() == 1, "the unattached streams expire", timeout=10)
    assert p.streams.get(attached.id) is attached and attached.status == "started"
    ended = [r for r in p.ops("streams") if r.get("operation") == "stream_ended"]
    assert len(ended) == 50 and {r["reason"] for r in ended} == {"unattached_expired"}
    # Room again: a new one is taken.
    assert not (await p.streams.started(spoofed(999))).attached


async def test_an_unattached_stream_ended_early_still_counts_until_its_ttl(parts: PartsFactory) -> None:
    p = await parts(max_unattached_streams=2, stream_unattached_ttl_s=3600)
    first = await p.streams.started(spoofed(1))
    await p.streams.started(spoofed(2))
    await p.streams.end(first, "stale")
    with pytest.raises(TooManyStreams):
        await p.streams.started(spoofed(3))
    first.started_at = utcnow() - timedelta(hours=2)
    assert (await p.streams.started(spoofed(3))).status == "started"
    assert p.streams.get(first.id) is None and p.streams.count() == 2


async def test_gc_prunes_expired_unattached_streams(parts: PartsFactory) -> None:
    p = await parts(stream_unattached_ttl_s=3600)
    stream = await p.streams.started(spoofed(1))
    stream.started_at = utcnow() - timedelta(hours=2)
    assert (await p.provisioning.gc())["pruned_streams"] == 1
    assert p.streams.get(stream.id) is None


async def test_a_restart_prunes_old_ended_streams_and_expires_old_unattached_ones(parts: PartsFactory) -> None:
    p = await parts(stream_retention_s=60, stream_unattached_ttl_s=3600)
    now = utcnow()
    old = stored("old", started_at=now - timedelta(days=3), status="ended", ended_at=now - timedelta(days=2))
    recent = stored("recent", started_at=now - timedelta(seconds=20), status="ended",
                    ended_at=now - timedelta(seconds=10))
    stale = stored("stale", started_at=now - timedelta(hours=5), attached=False, container_id="203.0.113.9:1")
    for s in (old, recent, stale):
        await p.store.save_stream(s)
    await p.streams.load()
    assert p.streams.get("old") is None and p.streams.get("stale") is None
    assert p.streams.get("recent") is not None
    assert {s.id for s in await p.store.load_streams()} >= {"recent"}
    assert "old" not in {s.id for s in await p.store.load_streams()}
