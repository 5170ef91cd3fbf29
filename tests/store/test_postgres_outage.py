"""The store while its PostgreSQL server is stopped: writes are queued, reads and pings say unavailable, one
WARNING line; when the server is back the queue lands. Also when the server is away at open."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

import support
from aceorch.models import Engine
from aceorch.store import StoreUnavailable
from aceorch.store.sql import SqlStore
from pg_fixtures import PgCluster


def engine(n: int) -> Engine:
    return Engine(container_id=f"{n}" * 64, container_name=f"acestream-{n}", host="127.0.0.1", port=19000 + n,
                  host_http_port=19000 + n, container_http_port=6878)


@pytest.fixture
def outage(pg_cluster: PgCluster) -> Iterator[PgCluster]:
    """The session's server, started again after the test whatever it did."""
    try:
        yield pg_cluster
    finally:
        pg_cluster.stop()
        pg_cluster.start()


async def test_writes_queue_while_postgres_is_stopped_and_land_when_it_is_back(
    outage: PgCluster, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqlStore(pg_url, retry_max_s=0.5)
    await store.open()
    try:
        await store.save_engine(engine(1))
        await store.flush()
        outage.stop()
        with caplog.at_level(logging.WARNING, logger="aceorch.store"):
            for n in (2, 3, 4):
                await store.save_engine(engine(n))  # returns at once: queued
            await store.delete_engine(engine(1).container_id)
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await store.load_engines()
            assert store.pending_writes == 4
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        outage.start()
        await support.async_wait_until(lambda: store.pending_writes == 0, "the queue to land", timeout=20)
        await store.ping()
        assert [e.container_id for e in await store.load_engines()] == [engine(n).container_id for n in (2, 3, 4)]
    finally:
        await store.aclose()


async def test_a_store_opened_while_postgres_is_away_keeps_trying_and_lands_its_queue(
    outage: PgCluster, pg_url: str
) -> None:
    outage.stop()
    store = SqlStore(pg_url, retry_max_s=0.5)
    try:
        with pytest.raises(StoreUnavailable):
            await store.open()
        await store.save_engine(engine(7))  # queued for when it opens
        assert store.pending_writes == 1
        outage.start()
        await support.async_wait_until(lambda: store.pending_writes == 0, "the store to open and write",
                                       timeout=20)
        assert [e.container_name for e in await store.load_engines()] == ["acestream-7"]
    finally:
        await store.aclose()


async def test_closing_while_postgres_is_away_is_prompt_and_says_what_is_lost(
    outage: PgCluster, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqlStore(pg_url, retry_max_s=0.5)
    await store.open()
    outage.stop()
    await store.save_engine(engine(5))
    with pytest.raises(StoreUnavailable):
        await store.ping()
    begin = time.monotonic()
    await store.aclose()
    assert time.monotonic() - begin < 1.0
    assert "closing with 1 writes that never reached the database" in caplog.text
