"""Stream lifecycle on the in-memory runtime: started, ended, stopped, auto-delete and pruning."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from service_parts import Parts

from aceorch.models import StreamStart

PartsFactory = Callable[..., Awaitable[Parts]]


def start(port: int, *, key: str = "ih", session: str = "pb", **extra: object) -> StreamStart:
    return StreamStart(engine_host="127.0.0.1", engine_port=port, key_type="infohash", key=key,
                       playback_session_id=session, **extra)  # type: ignore[arg-type]


async def test_a_started_stream_is_attached_to_the_engine_at_that_address(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    stream = await p.streams.started(start(engine.port, stat_url="http://x/ace/stat/1"))
    assert (stream.id, stream.container_id, stream.attached) == ("ih|pb", engine.container_id, True)
    assert engine.streams == [stream.id] and engine.last_stream_usage == stream.started_at
    assert p.streams.of_engine(engine) == [stream] and p.streams.count_started() == 1


async def test_a_stream_on_an_unknown_engine_keeps_its_address(parts: PartsFactory) -> None:
    p = await parts()
    stream = await p.streams.started(start(1234, labels={"stream_id": "mine"}))
    assert (stream.id, stream.container_id, stream.attached) == ("mine", "127.0.0.1:1234", False)


async def test_the_same_stream_started_again_only_refreshes_its_urls(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    first = await p.streams.started(start(engine.port, stat_url="http://x/a"))
    again = await p.streams.started(start(engine.port, stat_url="http://x/b", command_url="http://x/c"))
    assert again is first and (first.stat_url, first.command_url) == ("http://x/b", "http://x/c")
    assert p.streams.total_started == 1 and engine.streams == [first.id]


async def test_ending_by_engine_ends_its_latest_stream_and_is_idempotent(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    older = await p.streams.started(start(engine.port, session="a"))
    newer = await p.streams.started(start(engine.port, session="b"))
    assert await p.streams.ended(engine.container_name, None, "done") == (True, newer)
    assert (newer.status, newer.end_reason, older.status) == ("ended", "done", "started")
    assert await p.streams.ended(None, newer.id, None) == (False, newer)
    assert await p.streams.ended(None, "nope", None) == (False, None)
    assert engine.streams == [older.id]


async def test_stop_asks_the_engine_then_ends_the_stream(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    stream = await p.streams.started(start(engine.port, command_url="http://x/ace/cmd/ih/pb?method=x&a=1"))
    assert await p.streams.stop(stream) is True
    assert (stream.status, stream.end_reason) == ("ended", "stopped")
    assert await p.streams.stop(stream) is False


async def test_auto_delete_stops_an_engine_left_without_streams(parts: PartsFactory) -> None:
    p = await parts(auto_delete=True, engine_grace_period_s=0)
    engine = await p.engine()
    stream = await p.streams.started(start(engine.port))
    await p.streams.ended(None, stream.id, None)
    await p.settle()
    assert p.fleet.engines() == []
    assert [r["reason"] for r in p.ops("provisioning") if r["operation"] == "stop_engine_success"] == ["auto_delete"]


async def test_a_new_stream_within_the_grace_period_cancels_auto_delete(parts: PartsFactory) -> None:
    p = await parts(auto_delete=True, engine_grace_period_s=3600)
    engine = await p.engine()
    first = await p.streams.started(start(engine.port, session="a"))
    await p.streams.ended(None, first.id, None)
    assert p.streams.auto_delete_pending(engine.container_id)
    await p.streams.started(start(engine.port, session="b"))
    assert not p.streams.auto_delete_pending(engine.container_id)
    await p.settle()
    assert p.fleet.engines() == [engine]


async def test_auto_delete_keeps_the_floor(parts: PartsFactory) -> None:
    p = await parts(auto_delete=True, engine_grace_period_s=0, min_replicas=1)
    engine = await p.engine()
    stream = await p.streams.started(start(engine.port))
    await p.streams.ended(None, stream.id, None)
    await p.settle()
    assert p.fleet.engines() == [engine]
    assert [r["reason"] for r in p.ops("autoscaler") if r["operation"] == "auto_delete_skipped"] == ["floor"]


async def test_prune_forgets_streams_ended_before_the_retention(parts: PartsFactory) -> None:
    p = await parts(stream_retention_s=60)
    old = await p.streams.started(start(1, session="old"))
    recent = await p.streams.started(start(1, session="recent"))
    await p.streams.end(old, "done")
    await p.streams.end(recent, "done")
    assert old.ended_at is not None
    old.ended_at -= timedelta(seconds=120)
    assert await p.streams.prune() == 1
    assert p.streams.get(old.id) is None and p.streams.get(recent.id) is recent
