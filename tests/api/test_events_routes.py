"""GET /events (filters, paging, auth), GET /history, GET / and the SSE stream over a live server."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from aceorch.api import create_app
from aceorch.config import Settings
from aceorch.runtime.fake import InMemoryRuntime

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "streams"))

from aceorch_live import AUTH, live_server, live_settings  # noqa: E402

KEY = {"Authorization": "Bearer k-events"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(_env_file=None, db_url=f"sqlite:///{tmp_path}/o.db", debug_log_dir=str(tmp_path / "d"),
                        min_replicas=0, min_free_replicas=0, min_provision_interval_s=0, api_key="k-events",
                        provision_wait_for="running", runtime="docker", auto_delete=False)  # type: ignore[call-arg]
    runtime = InMemoryRuntime(images={"acestream/engine:latest"})
    with TestClient(create_app(settings, runtime=runtime), headers=KEY) as c:
        yield c


def test_events_filter_by_type_and_engine_and_page_with_the_cursor(client: TestClient) -> None:
    engines = [client.post("/provision/acestream", json={}).json()["container_id"] for _ in range(3)]
    page = client.get("/events", params={"type": "engine"}).json()
    started = [e for e in page["events"] if e["action"] == "started"]
    assert [e["engine"] for e in started] == engines
    assert all(e["message"].startswith("engine ") for e in started)
    one = client.get("/events", params={"engine": engines[1][:10], "type": "engine"}).json()["events"]
    assert [e["engine"] for e in one] == [engines[1]]
    first = client.get("/events", params={"type": "engine", "limit": 2}).json()
    assert len(first["events"]) == 2
    rest = client.get("/events", params={"type": "engine", "cursor": first["cursor"]}).json()
    assert [e["id"] for e in first["events"] + rest["events"]] == [e["id"] for e in page["events"]]
    assert rest["last_id"] >= page["events"][-1]["id"]
    assert client.get("/events", params={"since": "2999-01-01T00:00:00Z"}).json()["events"] == []
    assert client.get("/events", params={"type": "nope"}).status_code == 422
    assert client.get("/events", headers={"Authorization": ""}).status_code == 401
    assert client.get("/events/stream", headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_history_has_the_starts_and_the_engines_and_root_redirects(client: TestClient) -> None:
    cid = client.post("/provision/acestream", json={}).json()["container_id"]
    h = client.get("/history").json()
    assert h["range_s"] == 3600 and h["interval_s"] == 10
    assert [p["container_id"] for p in h["provisions"]] == [cid] and h["provisions"][0]["ok"] is True
    assert [e["container_id"] for e in h["engines"]] == [cid]
    assert h["samples"] and h["samples"][0]["vpn"] is None
    assert client.get("/history", params={"range": "24h"}).json()["range_s"] == 86400
    assert client.get("/history", params={"range": "2d"}).status_code == 422
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/panel/"


def test_the_stream_delivers_engine_changes_as_they_happen_and_replays_after_an_id(tmp_path: Path) -> None:
    with live_server(live_settings(tmp_path)) as srv:
        got: list[tuple[float, dict[str, Any]]] = []
        ready = threading.Event()

        def listen() -> None:
            with httpx.stream("GET", f"{srv.url}/events/stream?type=engine", headers=AUTH, timeout=20) as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                for line in resp.iter_lines():
                    if line == ": live":
                        ready.set()
                    if line.startswith("data: "):
                        got.append((time.time(), json.loads(line[6:])))
                        return

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        assert ready.wait(10)
        sent = time.time()
        # an end of an unknown stream changes nothing: no event
        resp = srv.client.post("/events/stream_ended", json={"container_id": "x", "stream_id": "nope"})
        assert resp.status_code == 200
        cid = srv.provision()["container_id"]
        t.join(15)
        assert got, "no event arrived"
        arrived, event = got[0]
        assert event["type"] == "engine" and event["engine"] == cid
        assert arrived - sent < 15
        replay = httpx.get(f"{srv.url}/events", params={"type": "engine"}, headers=AUTH).json()["events"]
        assert replay[0]["id"] == event["id"]
        # a reconnect with Last-Event-ID gets what came after that id first
        with httpx.stream("GET", f"{srv.url}/events/stream?type=engine", headers={**AUTH, "Last-Event-ID": "0"},
                          timeout=10) as resp:
            ids = next(int(line[4:]) for line in resp.iter_lines() if line.startswith("id: "))
        assert ids == event["id"]
