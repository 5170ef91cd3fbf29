"""Engine hygiene on the in-memory runtime: usage samples and the idle cache clean-up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from service_parts import Parts

from aceorch.errors import RuntimeFailure
from aceorch.models import Engine, StreamStart, utcnow
from aceorch.runtime.base import ContainerStats
from aceorch.service.collector import cache_cleanup_due

PartsFactory = Callable[..., Awaitable[Parts]]


def _start(engine: Engine) -> StreamStart:
    return StreamStart(engine_host="127.0.0.1", engine_port=engine.port, key_type="infohash", key="ih",
                       playback_session_id="pb", stat_url="http://x/ace/stat/ih/pb",
                       container_id=engine.container_id)


def test_a_clean_up_is_due_once_per_idle_period() -> None:
    now = utcnow()
    engine = Engine(container_id="c", container_name="e", host="h", port=1, host_http_port=1,
                    container_http_port=1, first_seen=now - timedelta(seconds=600))

    assert cache_cleanup_due(engine, now, 300)
    assert not cache_cleanup_due(engine, now, 0)  # 0 disables it
    assert not cache_cleanup_due(engine, now, 900)  # not idle long enough
    engine.last_cache_cleanup = now - timedelta(seconds=10)
    assert not cache_cleanup_due(engine, now, 300)  # already emptied since its last use
    engine.last_stream_usage = now - timedelta(seconds=5)
    assert not cache_cleanup_due(engine, now, 300)  # used since, but not idle long enough yet
    assert cache_cleanup_due(engine, now + timedelta(seconds=300), 300)
    engine.streams.append("s1")
    assert not cache_cleanup_due(engine, now + timedelta(seconds=300), 300)  # serving a stream
    engine.streams.clear()
    engine.running = False
    assert not cache_cleanup_due(engine, now + timedelta(seconds=300), 300)


async def test_a_hygiene_round_samples_cpu_and_memory_of_every_running_engine(parts: PartsFactory) -> None:
    p = await parts()
    engine = await p.engine()
    assert (engine.cpu_percent, engine.memory_bytes) == (None, None)
    p.runtime.containers[engine.container_id].usage = ContainerStats(cpu_percent=12.34567, memory_bytes=48 << 20)

    await p.collector.hygiene_once()

    assert (engine.cpu_percent, engine.memory_bytes) == (12.346, 48 << 20)
    p.runtime.set_exited(engine.container_id)
    await p.collector.hygiene_once()  # a sample the runtime refuses: unknown again
    assert (engine.cpu_percent, engine.memory_bytes) == (None, None)


async def test_an_idle_engine_gets_its_cache_cleared_through_the_runtime_once(parts: PartsFactory) -> None:
    p = await parts(engine_cache_cleanup_idle_s=60, engine_cache_dir="/cache")
    engine = await p.engine()
    engine.first_seen = utcnow() - timedelta(seconds=120)
    engine.cache_size_bytes = 4096

    await p.collector.hygiene_once()
    await p.collector.hygiene_once()

    assert p.runtime.containers[engine.container_id].cache_clears == ["/cache"]
    assert engine.last_cache_cleanup is not None and engine.cache_size_bytes == 0
    (record,) = [r for r in p.ops("health") if r.get("operation") == "cache_cleanup"]
    assert record["success"] is True and record["path"] == "/cache" and record["cache_size_bytes_before"] == 4096
    stored = {e.container_id: e for e in await p.store.load_engines()}
    assert stored[engine.container_id].last_cache_cleanup is not None


async def test_an_engine_with_a_stream_or_a_recent_one_keeps_its_cache(parts: PartsFactory) -> None:
    p = await parts(engine_cache_cleanup_idle_s=60)
    engine = await p.engine()
    engine.first_seen = utcnow() - timedelta(seconds=120)
    stream = await p.streams.started(_start(engine))

    await p.collector.hygiene_once()
    assert p.runtime.containers[engine.container_id].cache_clears == []

    await p.streams.end(stream, "done")  # the engine's last stream use is now
    assert not engine.streams
    await p.collector.hygiene_once()
    assert p.runtime.containers[engine.container_id].cache_clears == []
    assert engine.last_cache_cleanup is None


async def test_a_failed_clean_up_is_recorded_and_not_retried_every_round(parts: PartsFactory) -> None:
    p = await parts(engine_cache_cleanup_idle_s=60)
    engine = await p.engine()
    engine.first_seen = utcnow() - timedelta(seconds=120)
    p.runtime.fail_next("clear_cache", RuntimeFailure("exec failed"))

    await p.collector.hygiene_once()
    await p.collector.hygiene_once()

    assert p.runtime.call_names().count("clear_cache") == 1
    assert engine.last_cache_cleanup is None
    (record,) = [r for r in p.ops("health") if r.get("operation") == "cache_cleanup"]
    assert record["success"] is False and "exec failed" in record["error"]


async def test_a_clean_up_idle_time_of_zero_turns_it_off(parts: PartsFactory) -> None:
    p = await parts(engine_cache_cleanup_idle_s=0)
    engine = await p.engine()
    engine.first_seen = utcnow() - timedelta(days=1)

    await p.collector.hygiene_once()

    assert "clear_cache" not in p.runtime.call_names() and engine.last_cache_cleanup is None
