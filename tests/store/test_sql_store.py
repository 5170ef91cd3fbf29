"""SqlStore on a temporary SQLite file and on a throwaway PostgreSQL database (the same behaviour on both):
round trips, upserts, trimming, pruning, reopening, a free loop, writes that never wait for the row."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from aceorch.errors import AceorchError, ConfigError
from aceorch.models import Engine, HealthStatus, StatSnapshot, Stream
from aceorch.store import Store, StoreUnavailable, make_store
from aceorch.store.sql import SqlStore

T0 = datetime(2025, 10, 18, 14, 45, 23, 456789, tzinfo=UTC)
# Same instant family, but written with a +02:00 offset: must come back as the equal UTC time.
PLUS2 = timezone(timedelta(hours=2))


def make_engine(container_id: str = "a" * 64, **changes: object) -> Engine:
    values: dict[str, object] = dict(
        container_id=container_id,
        container_name="acestream-1",
        host="127.0.0.1",
        port=19001,
        host_http_port=19001,
        container_http_port=6878,
        container_https_port=6879,
        host_https_port=19101,
        labels={"ondemand.app": "myservice", "acestream.http_port": "19001"},
        first_seen=T0,
        last_seen=T0 + timedelta(seconds=5),
        streams=["s1", "s2"],
        health_status=HealthStatus.HEALTHY,
        last_health_check=(T0 + timedelta(seconds=7)).astimezone(PLUS2),
        last_cache_cleanup=None,
        last_stream_usage=T0 + timedelta(seconds=3),
        cache_size_bytes=5 * 1024**3,
        running=True,
        consecutive_failures=2,
        unhealthy_since=T0 + timedelta(seconds=9),
        created_at=T0 - timedelta(seconds=1),
        p2p_port=40001,
    )
    values.update(changes)
    return Engine(**values)  # type: ignore[arg-type]


def make_stream(stream_id: str, started_at: datetime, **changes: object) -> Stream:
    values: dict[str, object] = dict(
        id=stream_id,
        key_type="content_id",
        key="abcd",
        container_id="a" * 64,
        playback_session_id="pb1",
        stat_url="http://localhost:19001/ace/stat/x/pb1",
        command_url="",
        is_live=True,
        started_at=started_at,
        labels={"stream_id": stream_id},
    )
    values.update(changes)
    return Stream(**values)  # type: ignore[arg-type]


def snap(seconds: float, peers: int | None = 1) -> StatSnapshot:
    return StatSnapshot(
        ts=T0 + timedelta(seconds=seconds),
        peers=peers,
        speed_down=100,
        speed_up=10,
        downloaded=2**40,
        uploaded=None,
        status="dl",
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def inspect_sqlite_file(path: Path) -> tuple[str, set[str]] | None:
    """The journal mode and table names of a SQLite file, or None without a file (a quick read)."""
    if not path.is_file():
        return None
    conn = sqlite3.connect(path)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    return mode, tables


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "orchestrator.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    """The same tests on a SQLite file and on a PostgreSQL database of their own."""
    if request.param == "sqlite":
        return sqlite_url(db_path)
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    s = SqlStore(store_url)
    await s.open()
    try:
        yield s
    finally:
        await s.aclose()


async def test_open_creates_the_file_and_its_directories_in_wal_mode(db_path: Path) -> None:
    store = make_store(sqlite_url(db_path))
    assert isinstance(store, Store)
    assert inspect_sqlite_file(db_path) is None
    await store.open()
    await store.open()  # idempotent
    try:
        await store.ping()
        assert inspect_sqlite_file(db_path) == ("wal", {"engines", "streams", "stream_stats", "alembic_version"})
    finally:
        await store.aclose()
        await store.aclose()  # idempotent


async def test_a_relative_sqlite_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SqlStore("sqlite:///./data/orchestrator.db")
    await store.open()
    try:
        assert (tmp_path / "data" / "orchestrator.db").is_file()
        assert store.url.database == str((tmp_path / "data" / "orchestrator.db").resolve())
    finally:
        await store.aclose()


async def test_engines_round_trip_with_aware_utc_times(store: SqlStore) -> None:
    engine = make_engine()
    await store.save_engine(engine)

    [loaded] = await store.load_engines()

    assert loaded == engine
    assert loaded.last_health_check is not None
    assert loaded.last_health_check.utcoffset() == timedelta(0)
    assert loaded.first_seen.tzinfo is not None and loaded.first_seen.utcoffset() == timedelta(0)
    assert loaded.health_status is HealthStatus.HEALTHY


async def test_save_engine_upserts_by_container_id_and_delete_forgets_it(store: SqlStore) -> None:
    await store.save_engine(make_engine("a" * 64, first_seen=T0))
    await store.save_engine(make_engine("b" * 64, first_seen=T0 - timedelta(minutes=1)))
    changed = make_engine(
        "a" * 64,
        first_seen=T0,
        streams=[],
        labels={"x": "1"},
        health_status=HealthStatus.UNHEALTHY,
        last_health_check=None,
        cache_size_bytes=None,
    )
    await store.save_engine(changed)

    loaded = await store.load_engines()

    assert [e.container_id for e in loaded] == ["b" * 64, "a" * 64]  # ordered by first_seen
    assert loaded[1] == changed

    await store.delete_engine("b" * 64)
    await store.delete_engine("does-not-exist")
    assert [e.container_id for e in await store.load_engines()] == ["a" * 64]


async def test_streams_round_trip_upsert_and_come_back_ordered_by_started_at(store: SqlStore) -> None:
    late = make_stream("late|pb", T0 + timedelta(seconds=10), is_live=False)
    early = make_stream("early|pb", T0.astimezone(PLUS2), labels={})
    await store.save_stream(late)
    await store.save_stream(early)
    ended = make_stream(
        "late|pb",
        T0 + timedelta(seconds=10),
        status="ended",
        ended_at=T0 + timedelta(seconds=20),
        end_reason="stale",
        collect_failures=3,
        attached=False,
        container_id="localhost:19002",
    )
    await store.save_stream(ended)

    loaded = await store.load_streams()

    assert [s.id for s in loaded] == ["early|pb", "late|pb"]
    assert loaded[0] == early
    assert loaded[0].started_at.utcoffset() == timedelta(0)
    assert loaded[1] == ended


async def test_add_stat_keeps_only_the_newest_snapshots_of_that_stream(store: SqlStore) -> None:
    for i in range(10):
        await store.add_stat("s1", snap(i, peers=i), keep=4)
    await store.add_stat("s2", snap(0, peers=100), keep=4)
    # An out-of-order older snapshot is itself the oldest, so it is trimmed at once.
    await store.add_stat("s1", snap(-5, peers=-5), keep=4)

    s1 = await store.load_stats("s1")
    s2 = await store.load_stats("s2")

    assert [s.peers for s in s1] == [6, 7, 8, 9]
    assert s1[0] == snap(6, peers=6)
    assert [s.peers for s in s2] == [100]


async def test_load_stats_filters_by_since_and_limits_to_the_newest_oldest_first(store: SqlStore) -> None:
    for i in range(6):
        await store.add_stat("s1", snap(i, peers=i), keep=100)

    assert [s.peers for s in await store.load_stats("s1", since=T0 + timedelta(seconds=3))] == [3, 4, 5]
    # The same instant written with another offset selects the same rows.
    since_plus2 = (T0 + timedelta(seconds=3)).astimezone(PLUS2)
    assert [s.peers for s in await store.load_stats("s1", since=since_plus2)] == [3, 4, 5]
    assert [s.peers for s in await store.load_stats("s1", limit=2)] == [4, 5]
    assert [s.peers for s in await store.load_stats("s1", since=T0, limit=10)] == [0, 1, 2, 3, 4, 5]
    assert await store.load_stats("s1", since=T0 + timedelta(hours=1)) == []
    assert await store.load_stats("unknown") == []


async def test_prune_streams_deletes_only_old_ended_streams_and_their_stats(store: SqlStore) -> None:
    cutoff = T0 + timedelta(hours=1)
    old_ended = make_stream("old", T0, status="ended", ended_at=cutoff - timedelta(seconds=1))
    new_ended = make_stream("new", T0, status="ended", ended_at=cutoff + timedelta(seconds=1))
    started = make_stream("live", T0 - timedelta(days=3))
    for s in (old_ended, new_ended, started):
        await store.save_stream(s)
        await store.add_stat(s.id, snap(1), keep=10)

    assert await store.prune_streams(ended_before=cutoff) == 1
    assert await store.prune_streams(ended_before=cutoff) == 0

    assert sorted(s.id for s in await store.load_streams()) == ["live", "new"]
    assert await store.load_stats("old") == []
    assert len(await store.load_stats("new")) == 1
    assert len(await store.load_stats("live")) == 1


async def test_a_new_store_on_the_same_database_sees_the_saved_data(store_url: str) -> None:
    first = SqlStore(store_url)
    await first.open()
    engine = make_engine()
    stream = make_stream("abcd|pb1", T0)
    await first.save_engine(engine)
    await first.save_stream(stream)
    await first.add_stat(stream.id, snap(1), keep=5)
    await first.aclose()

    second = SqlStore(store_url)
    await second.open()
    try:
        assert await second.load_engines() == [engine]
        assert await second.load_streams() == [stream]
        assert await second.load_stats(stream.id) == [snap(1)]
    finally:
        await second.aclose()


async def test_writes_return_before_the_row_and_the_loop_stays_free(store: SqlStore) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    ticker_task = asyncio.create_task(ticker())
    try:
        for i in range(500):
            await store.add_stat("s1", snap(i), keep=100)
        await store.save_stream(make_stream("x", T0))
        queued = store.pending_writes  # nothing was written yet: the caller never waited for a row
        await store.flush()
    finally:
        done.set()
        await ticker_task

    assert queued > 100
    assert store.pending_writes == 0
    assert ticks >= 1  # the writer awaited the database, handing the loop to the ticker
    assert len(await store.load_stats("s1")) == 100
    assert [s.id for s in await store.load_streams()] == ["x"]


async def test_concurrent_writes_are_serialised_and_trimmed_exactly(store: SqlStore) -> None:
    await asyncio.gather(*(store.add_stat("s1", snap(i, peers=i), keep=50) for i in range(200)))
    await asyncio.gather(*(store.save_stream(make_stream("same", T0, key=f"k{i}")) for i in range(50)))

    assert [s.peers for s in await store.load_stats("s1")] == list(range(150, 200))
    [only] = await store.load_streams()
    assert only.key.startswith("k")


async def test_use_before_open_or_after_close_raises_store_unavailable(db_path: Path) -> None:
    store = SqlStore(sqlite_url(db_path))
    with pytest.raises(StoreUnavailable):
        await store.ping()
    await store.open()
    await store.aclose()
    with pytest.raises(StoreUnavailable):
        await store.load_engines()
    with pytest.raises(StoreUnavailable):
        await store.open()


async def test_an_unusable_path_raises_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = SqlStore(sqlite_url(blocker / "orchestrator.db"))
    with pytest.raises(StoreUnavailable) as info:
        await store.open()
    assert isinstance(info.value, AceorchError)
    await store.aclose()


@pytest.mark.parametrize(("url", "driver"), [
    ("postgresql://user:secret@127.0.0.1:1/aceorch", "postgresql+asyncpg"),
    ("postgresql+psycopg://user:secret@127.0.0.1:1/aceorch", "postgresql+asyncpg"),
    ("postgresql+psycopg2://user:secret@127.0.0.1:1/aceorch", "postgresql+asyncpg"),
])
async def test_an_unreachable_postgres_raises_store_unavailable_without_the_password(url: str, driver: str) -> None:
    store = SqlStore(url)
    assert store.url.drivername == driver
    with pytest.raises(StoreUnavailable) as info:
        await store.open()
    assert "secret" not in str(info.value)
    await store.aclose()


def test_a_plain_sqlite_url_runs_on_aiosqlite() -> None:
    assert SqlStore("sqlite:///./orchestrator.db").url.drivername == "sqlite+aiosqlite"


@pytest.mark.parametrize("url", ["mysql://u@127.0.0.1/db", "not a url"])
def test_make_store_refuses_other_schemes(url: str) -> None:
    with pytest.raises(ConfigError):
        make_store(url)
