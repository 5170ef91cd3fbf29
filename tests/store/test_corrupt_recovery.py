"""A corrupted SQLite store at start: the service moves it aside with one clear line, starts on a new file,
and rebuilds its engines from the containers' labels."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

import support
from aceorch import __version__
from aceorch.config import Settings
from aceorch.debuglog.writer import DebugLog
from aceorch.runtime.fake import InMemoryRuntime
from aceorch.service.core import Service
from aceorch.store import make_store


def build(settings: Settings, runtime: InMemoryRuntime) -> Service:
    return Service(settings, runtime=runtime, store=make_store(settings.api.db_url),
                   debuglog=DebugLog(settings, version=__version__))


async def test_a_corrupt_sqlite_store_is_moved_aside_and_engines_come_back_from_labels(
    make_settings: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No engine API answers in the in-memory runtime: adoption keeps them as unreachable after 1 s.
    settings = make_settings(min_replicas=2, provision_wait_for="running", runtime="docker", startup_timeout_s=1)
    runtime = InMemoryRuntime()
    first = build(settings, runtime)
    await first.start()
    try:
        await support.async_wait_until(lambda: first.fleet.engine_count() == 2, "two engines")
        before = sorted((e.container_id, e.container_name) for e in first.fleet.engines())
    finally:
        await first.aclose()  # ENGINES_ON_EXIT=keep: the containers stay

    db = Path(settings.api.db_url.removeprefix("sqlite:///"))
    await asyncio.to_thread(db.write_bytes, b"SQLite format 3\x00" + b"\x5a" * 4096)

    # The same Docker engine seen by a new process: the containers and their labels are all that is left.
    again = InMemoryRuntime()
    again.containers = runtime.containers
    second = build(make_settings(provision_wait_for="running", runtime="docker", startup_timeout_s=1), again)
    caplog.set_level(logging.INFO, logger="aceorch")
    await second.start()
    try:
        await support.async_wait_until(lambda: second.status.started, "startup")
        await support.async_wait_until(lambda: second.fleet.engine_count() == 2, "the engines, adopted again",
                                       timeout=20)
        assert sorted((e.container_id, e.container_name) for e in second.fleet.engines()) == before
        corrupt = [r.getMessage() for r in caplog.records if "not a readable SQLite database" in r.getMessage()]
        assert len(corrupt) == 1 and "moved it to" in corrupt[0]
        aside = await asyncio.to_thread(lambda: [p.name for p in db.parent.iterdir() if ".corrupt-" in p.name])
        assert len(aside) == 1
        assert second.status.readiness()["database"] == "ok"
        await second.store.flush()
        assert sorted(e.container_id for e in await second.store.load_engines()) == [cid for cid, _ in before]
    finally:
        await second.aclose()
