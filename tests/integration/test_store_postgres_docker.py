"""End to end on PostgreSQL: the real ``aceorch serve`` (Docker runtime) provisions engines and a stream starts;
after a restart of the orchestrator the engines and the stream are back, from PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from orchestrator_proc import Orchestrator

from support import wait_until

pytestmark = pytest.mark.docker


def test_engines_and_streams_are_back_from_postgres_after_a_restart(
    orch: Callable[..., Orchestrator], pg_url: str
) -> None:
    o = orch(DB_URL=pg_url, ENGINES_ON_EXIT="keep")
    for n in range(2):
        r = o.provision({"labels": {"n": str(n)}})
        assert r.status_code == 200, r.text
    engines = {e["container_id"]: e for e in o.engines()}
    assert len(engines) == 2
    engine = next(iter(engines.values()))
    event: dict[str, Any] = {
        "container_id": engine["container_id"], "engine": {"host": engine["host"], "port": engine["port"]},
        "stream": {"key_type": "content_id", "key": "k-restart"},
        "session": {"playback_session_id": "p-restart", "stat_url": f"http://{engine['host']}:{engine['port']}/x",
                    "command_url": "", "is_live": 1},
    }
    started = o.client.post("/events/stream_started", json=event)
    assert started.status_code == 200, started.text
    stream_id = started.json()["id"]

    assert o.stop() in (0, -15)  # SIGTERM: the store writes its queue before it closes
    o.start()

    wait_until(lambda: len(o.engines()) == 2, timeout=60, what="the two engines, adopted again")
    back = {e["container_id"]: e for e in o.engines()}
    assert set(back) == set(engines)
    for cid, e in back.items():  # first_seen comes from the stored row, not from the adoption
        assert e["first_seen"] == engines[cid]["first_seen"]
        assert e["labels"] == engines[cid]["labels"]
    streams = {s["id"]: s for s in o.client.get("/streams").json()}
    assert stream_id in streams, streams
    assert streams[stream_id]["container_id"] == engine["container_id"]
    assert streams[stream_id]["status"] == "started"
    assert "store open: postgresql+asyncpg://" in o.logs()
