"""PostgreSQL going away for 10 s while engines are provisioned and a stream starts: nothing stops, nothing is
lost. The real ``aceorch serve`` (process runtime) on a throwaway PostgreSQL database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from orchestrator_proc import Orchestrator

from aceorch.models import Engine, Stream
from aceorch.store.sql import SqlStore
from pg_fixtures import PgCluster
from support import wait_until

OUTAGE_S = 10.0


async def _rows(url: str) -> tuple[list[Engine], list[Stream]]:
    store = SqlStore(url)
    await store.open()
    try:
        return await store.load_engines(), await store.load_streams()
    finally:
        await store.aclose()


def rows(url: str) -> tuple[list[Engine], list[Stream]]:
    """The engine and stream rows, as a fresh store reads them."""
    return asyncio.run(_rows(url))


def readiness(o: Orchestrator) -> dict[str, Any]:
    checks: dict[str, Any] = o.client.get("/readyz").json()["checks"]
    return checks


def start_stream(o: Orchestrator, engine: dict[str, Any], n: int) -> None:
    event = {"container_id": engine["container_id"], "engine": {"host": engine["host"], "port": engine["port"]},
             "stream": {"key_type": "content_id", "key": f"k{n}"},
             "session": {"playback_session_id": f"p{n}", "stat_url": f"http://127.0.0.1:{engine['port']}/x",
                         "command_url": "", "is_live": 1}}
    r = o.client.post("/events/stream_started", json=event)
    assert r.status_code == 200, r.text


def test_postgres_stopped_for_10s_while_provisioning_loses_nothing(
    pg_cluster: PgCluster, pg_url: str, tmp_path: Path
) -> None:
    o = Orchestrator(tmp_path, {"RUNTIME": "process", "DB_URL": pg_url, "MONITOR_INTERVAL_S": "1",
                                "MAX_REPLICAS": "10", "MAX_ACTIVE_REPLICAS": "10"}).start()
    try:
        assert o.provision({}).status_code == 200
        start_stream(o, o.engines()[0], 0)

        pg_cluster.stop()
        down_at = time.monotonic()
        try:
            wait_until(lambda: readiness(o)["database"] == "down", timeout=10, what="readyz database: down")
            for n in range(1, 4):  # provisioning and streaming go on while the database is away
                r = o.provision({"labels": {"n": str(n)}})
                assert r.status_code == 200, r.text
                start_stream(o, next(e for e in o.engines() if e["container_id"] == r.json()["container_id"]), n)
            assert len(o.engines()) == 4
            assert readiness(o)["database"] == "down"
            assert o.client.get("/readyz").status_code == 200  # a database outage does not take aceorch out of service
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))  # the outage lasts 10 s whatever we do
        finally:
            pg_cluster.start()

        wait_until(lambda: readiness(o)["database"] == "ok", timeout=30, what="readyz database: ok")
        memory_engines = {e["container_id"]: e for e in o.engines()}
        memory_streams = {s["id"]: s for s in o.client.get("/streams").json()}
        assert len(memory_engines) == 4 and len(memory_streams) == 4

        def landed() -> bool:
            engines, streams = rows(pg_url)
            return ({e.container_id for e in engines} == set(memory_engines)
                    and {s.id for s in streams} == set(memory_streams))

        wait_until(landed, timeout=30, what="the queued writes to land")
        engines, streams = rows(pg_url)
        for e in engines:
            shown = memory_engines[e.container_id]
            assert (e.container_name, e.port, e.labels) == (shown["container_name"], shown["port"], shown["labels"])
        for s in streams:
            assert (s.container_id, s.key, s.status) == (memory_streams[s.id]["container_id"],
                                                         memory_streams[s.id]["key"], memory_streams[s.id]["status"])
        warnings = [line for line in o.logs().splitlines() if "WARNING" in line and "aceorch.store" in line]
        assert len(warnings) == 1, warnings
        assert "does not answer" in warnings[0]
    finally:
        o.close()
