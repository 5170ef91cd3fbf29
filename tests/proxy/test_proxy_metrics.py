"""The proxy's Prometheus metrics: read from the hub at scrape time, counters that never go back when a session
ends, the lagging-viewers gauge, the delivery-delay histogram when the hub keeps one, and both ``/metrics``
(the orchestrator's, embedded; the standalone proxy's own, with its key rule)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "streams"))
from aceorch_live import live_server, live_settings  # noqa: E402

from aceorch.config import Settings  # noqa: E402
from aceorch.proxy.app import create_proxy_app  # noqa: E402
from aceorch.proxy.debug import LAGGING_WINDOW_S  # noqa: E402
from aceorch.proxy.hub import Hub  # noqa: E402
from aceorch.proxy.latency import DelayHistogram  # noqa: E402
from aceorch.proxy.metrics import COUNTERS, DELIVERY_DELAY, GAUGES, ProxyCollector, proxy_registry  # noqa: E402
from aceorch.proxy.session import Viewer  # noqa: E402
from support import wait_until  # noqa: E402

CONTENT = "0a4848271c91ce2d8965ce416267c25047dc8141"


def parse(text: str) -> dict[str, float]:
    """Unlabelled samples and histogram buckets (``name{le="x"}``) by name."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + (f'{{le="{s.labels["le"]}"}}' if "le" in s.labels else "")
            out[key] = float(s.value)
    return out


def scrape(hub: Hub) -> dict[str, float]:
    """What Prometheus would read from a registry holding the hub's collector."""
    from prometheus_client import generate_latest

    return parse(generate_latest(proxy_registry(hub)).decode())


class WaitingClient:
    """An orchestrator that never answers the engine list: a session waits in engine selection until stopped."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()

    async def engines(self) -> list[Any]:
        self.asked.set()
        await asyncio.Event().wait()
        return []

    async def p2p_holder(self) -> str | None:
        return None

    async def watch_engines(self, changed: Any, *, interval_s: float) -> None:
        await asyncio.Event().wait()


def make_hub() -> tuple[Hub, WaitingClient]:
    settings = Settings(_env_file=None)
    client = WaitingClient()
    return Hub(settings.proxy, client=client, http=httpx.AsyncClient()), client  # type: ignore[arg-type]


async def test_every_metric_is_exported_from_an_idle_hub_with_prometheus_names() -> None:
    hub, _ = make_hub()
    try:
        m = scrape(hub)
        histogram = {k for k in m if k.startswith(DELIVERY_DELAY)}
        assert {f"{n}_total" for n in COUNTERS} | set(GAUGES) == set(m) - histogram
        assert all(v == 0 for v in m.values())
        assert all(name.startswith("orch_proxy_") for name in m)
    finally:
        await hub.aclose()


async def test_totals_never_go_back_while_a_session_stops_and_after_it_ended() -> None:
    hub, client = make_hub()
    try:
        session = hub.open("content_id", CONTENT, {"id": CONTENT}, None)
        await client.asked.wait()  # the session's task waits for an engine; bytes go straight into its buffer
        session.buffer.write(b"\x47" + b"\x00" * 187)
        session.reconnects = 2
        session.lagged = 3
        before = scrape(hub)
        assert before["orch_proxy_bytes_received_total"] == 188 and before["orch_proxy_streams"] == 1
        # stop(): the session leaves the hub's live sessions before its totals move to the hub's own
        session.stop("no_viewers")
        stopping = scrape(hub)
        assert stopping["orch_proxy_streams"] == 0
        for name in ("orch_proxy_bytes_received_total", "orch_proxy_upstream_reconnects_total",
                     "orch_proxy_viewer_lags_total"):
            assert stopping[name] == before[name], name
        assert session.task is not None
        await asyncio.wait([session.task], timeout=5)
        after = scrape(hub)
        assert session.state == "stopped" and after["orch_proxy_streams_ended_total"] == 1
        for name in ("orch_proxy_bytes_received_total", "orch_proxy_upstream_reconnects_total",
                     "orch_proxy_viewer_lags_total"):
            assert after[name] == before[name], name
    finally:
        await hub.aclose()


async def test_lagging_viewers_are_those_moved_to_the_live_edge_within_the_window() -> None:
    hub, client = make_hub()
    now = [1000.0]
    collector = ProxyCollector(hub, monotonic=lambda: now[0])
    try:
        session = hub.open("content_id", CONTENT, {"id": CONTENT}, None)
        await client.asked.wait()
        viewers = [Viewer(f"r{i}", "127.0.0.0/24") for i in range(4)]
        session.viewers.update(viewers)
        viewers[0].last_lag = now[0] - 1
        viewers[1].last_lag = now[0] - LAGGING_WINDOW_S - 1  # too long ago
        gauges = {m.name: m.samples[0].value for m in collector.collect() if m.type == "gauge"}
        assert gauges["orch_proxy_viewers"] == 4 and gauges["orch_proxy_viewers_lagging"] == 1
        session.counted_lag(viewers[2], 1)  # the session stamps the lag with the real monotonic clock
        now[0] = time.monotonic()
        gauges = {m.name: m.samples[0].value for m in collector.collect() if m.type == "gauge"}
        assert gauges["orch_proxy_viewers_lagging"] == 1  # viewers[0] is now far in the past, viewers[2] is not
        assert {m.name: m.samples[0].value for m in collector.collect()}["orch_proxy_viewer_lags"] == 1
        session.viewers.clear()
    finally:
        await hub.aclose()


async def test_the_delivery_delay_histogram_is_the_hubs_in_cumulative_buckets() -> None:
    hub, _ = make_hub()
    try:
        # the hub's histogram keeps per-bucket counts (not cumulative) and one overflow count after the bounds
        hub.delivery_delay = DelayHistogram((0.001, 0.01, 0.1))
        for seconds in [0.0005] * 5 + [0.005] * 3 + [0.05, 0.1935]:
            hub.delivery_delay.observe(seconds)
        assert hub.delivery_delay.counts == (5, 3, 1, 1)
        m = scrape(hub)
        assert m['orch_proxy_delivery_delay_seconds_bucket{le="0.001"}'] == 5
        assert m['orch_proxy_delivery_delay_seconds_bucket{le="0.01"}'] == 8
        assert m['orch_proxy_delivery_delay_seconds_bucket{le="0.1"}'] == 9
        assert m['orch_proxy_delivery_delay_seconds_bucket{le="+Inf"}'] == 10
        assert m["orch_proxy_delivery_delay_seconds_count"] == 10
        assert m["orch_proxy_delivery_delay_seconds_sum"] == pytest.approx(0.261)
        del hub.delivery_delay  # a hub without one exports none
        assert f"{DELIVERY_DELAY}_count" not in scrape(hub)
    finally:
        await hub.aclose()


@pytest.mark.parametrize("metrics_auth", ["key", "none"])
def test_the_standalone_proxy_serves_its_own_metrics_with_the_streams_key_rule(
    tmp_path: Path, metrics_auth: str,
) -> None:
    settings = Settings(_env_file=None, api_key="proxy-key-1", metrics_auth=metrics_auth,
                        debug_log_dir=str(tmp_path / "debug"))
    app = create_proxy_app(settings, "http://127.0.0.1:9")
    with TestClient(app) as client:
        ok = client.get("/metrics", headers={"Authorization": "Bearer proxy-key-1"})
        assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
        assert parse(ok.text)["orch_proxy_streams"] == 0
        assert not any(name.startswith("orch_engines") for name in parse(ok.text))
        bare = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        if metrics_auth == "key":
            assert bare.status_code == 401 and wrong.status_code == 403
            assert client.get("/proxy/streams").status_code == 401  # the same rule
        else:
            assert bare.status_code == 200 and "orch_proxy_viewers " in bare.text


def test_embedded_metrics_count_a_viewer_and_the_bytes_never_go_back_after_it_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIM_TIME_TO_DL_S", "0.5")
    with live_server(live_settings(tmp_path, proxy_linger_s=0.5)) as server:
        got = [0]
        leave = threading.Event()

        def watch() -> None:
            with httpx.stream("GET", f"{server.url}/ace/getstream?id={CONTENT}", timeout=30) as resp:
                assert resp.status_code == 200
                for chunk in resp.iter_raw():
                    got[0] += len(chunk)
                    if leave.is_set():
                        return

        def metrics() -> dict[str, float]:
            return parse(server.client.get("/metrics").text)

        viewer = threading.Thread(target=watch, daemon=True)
        viewer.start()
        seen = [wait_until(lambda: (m := metrics())["orch_proxy_bytes_sent_total"] >= 188 * 200 and m,
                           "the viewer to get bytes", timeout=20)]
        live = seen[0]
        assert live["orch_proxy_streams"] == 1 and live["orch_proxy_viewers"] == 1
        assert live["orch_proxy_bytes_received_total"] >= live["orch_proxy_bytes_sent_total"] > 0
        assert live["orch_proxy_viewers_joined_total"] == 1
        assert "orch_engines" in live and live["orch_streams_active"] == 1  # one registry, both
        # the viewer leaves: the session lingers, stops and ends; its bytes stay in the totals
        leave.set()
        viewer.join(10)
        assert not viewer.is_alive() and got[0] > 0

        def ended() -> bool:
            seen.append(metrics())
            return seen[-1]["orch_proxy_streams_ended_total"] == 1

        wait_until(ended, "the session to end", timeout=20, interval=0.05)
        final = seen[-1]
        assert final["orch_proxy_streams"] == 0 and final["orch_proxy_viewers"] == 0
        assert len(seen) >= 3
        for name in ("orch_proxy_bytes_received_total", "orch_proxy_bytes_sent_total"):
            values = [m[name] for m in seen]
            assert values == sorted(values), (name, values)
        assert final["orch_proxy_bytes_sent_total"] >= got[0]
