"""The proxy's engine watch without I/O of its own: the move decision, a session moved off an engine the
orchestrator gave up on (engines answered by an in-memory HTTP transport), the selection's P2P port holders,
and the standalone HTTP client's engine list, watch and health report against a fake orchestrator."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from aceorch.config import Settings
from aceorch.models import Engine, HealthStatus, StreamStart
from aceorch.proxy.http_client import HttpOrchestrator
from aceorch.proxy.hub import Hub
from aceorch.proxy.selection import Claim, choose, move_reason
from support import async_wait_until

PACKET = b"\x47" + bytes(187)


def engine(cid: str, *, health: HealthStatus = HealthStatus.HEALTHY, port: int = 1) -> Engine:
    return Engine(container_id=cid, container_name=f"n-{cid}", host="127.0.0.1", port=port, host_http_port=port,
                  container_http_port=port, health_status=health)


# -- the decision ------------------------------------------------------------------------------------------------
def test_move_reason_names_what_the_orchestrator_gave_up_on() -> None:
    claim = Claim("k", engine("a"))
    later = claim.at + 1
    assert move_reason(claim, {"a": engine("a")}, later) is None
    assert move_reason(claim, {"a": engine("a", health=HealthStatus.UNKNOWN)}, later) is None
    assert move_reason(claim, {"a": engine("a", health=HealthStatus.UNHEALTHY)}, later) == "engine_unhealthy"
    assert move_reason(claim, {"a": engine("a", health=HealthStatus.UNREACHABLE)}, later) == "engine_unreachable"
    assert move_reason(claim, {"b": engine("b")}, later) == "engine_gone"
    stopped = engine("a")
    stopped.running = False
    assert move_reason(claim, {"a": stopped}, later) == "engine_gone"


def test_a_list_read_before_the_claim_says_nothing_about_it() -> None:
    claim = Claim("k", engine("fresh"))
    assert move_reason(claim, {}, claim.at - 0.5) is None
    assert move_reason(claim, {}, claim.at + 0.5) == "engine_gone"


def test_each_vpns_p2p_holder_is_preferred_among_equals() -> None:
    es = [engine("plain"), engine("holder-a"), engine("holder-b")]
    es[1].streams = ["x"]
    pick, _ = choose(es, load=lambda e: len(e.streams), limit=2, p2p_holders=frozenset({"holder-a", "holder-b"}))
    assert pick is not None and pick.container_id == "holder-b"  # holder-a carries a stream: fewest first


# -- a session moved by the watch ----------------------------------------------------------------------------
class Engines:
    """Engines behind an in-memory transport: getstream answers a session, playback streams packets until
    stopped, ``method=stop`` is counted per engine."""

    def __init__(self, ports: dict[int, str]) -> None:
        self.ports = ports
        self.stops: list[str] = []
        self.playbacks: list[str] = []

    async def handler(self, request: httpx.Request) -> httpx.Response:
        cid = self.ports[request.url.port or 80]
        path = request.url.path
        if path == "/ace/getstream":
            base = f"http://{request.url.host}:{request.url.port}"
            return httpx.Response(200, json={"response": {
                "playback_url": f"{base}/play/{cid}", "stat_url": f"{base}/stat/{cid}",
                "command_url": f"{base}/cmd/{cid}", "playback_session_id": f"ps-{cid}", "is_live": 1},
                "error": None})
        if path.startswith("/cmd/"):
            assert request.url.params.get("method") == "stop"
            self.stops.append(cid)
            return httpx.Response(200, json={"response": "ok", "error": None})
        if path.startswith("/play/"):
            self.playbacks.append(cid)
            return httpx.Response(200, content=self._packets())
        return httpx.Response(404)

    async def _packets(self) -> AsyncIterator[bytes]:
        while True:
            yield PACKET * 20
            await asyncio.sleep(0.01)


class WatchedClient:
    """An orchestrator in memory whose engine changes the test pushes through ``push()``."""

    def __init__(self, engines: list[Engine]) -> None:
        self.list = engines
        self.reports: list[str] = []
        self.ended: list[tuple[str, str]] = []
        self._changed: Any = None
        self.watching = asyncio.Event()
        self.watches = 0
        self.watch_cancelled = 0

    async def engines(self) -> list[Engine]:
        return list(self.list)

    async def p2p_holders(self) -> frozenset[str]:
        return frozenset()

    async def provision(self, request_id: str | None) -> Engine:
        raise AssertionError("no provisioning expected")

    async def stream_started(self, start: StreamStart, request_id: str | None) -> str:
        return f"{start.key}|{start.container_id}"

    async def stream_ended(self, container_id: str, stream_id: str, reason: str, request_id: str | None) -> None:
        self.ended.append((container_id, reason))

    async def report_unhealthy(self, container_id: str, reason: str, request_id: str | None) -> None:
        self.reports.append(container_id)

    async def watch_engines(self, changed: Any, *, interval_s: float) -> None:
        self._changed = changed
        self.watches += 1
        self.watching.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.watch_cancelled += 1
            raise

    def push(self) -> None:
        self._changed({e.container_id: e for e in self.list}, time.monotonic())

    async def aclose(self) -> None:
        return None


async def test_a_session_on_an_engine_marked_unhealthy_moves_without_retrying_it() -> None:
    a, b = engine("a", port=7001), engine("b", port=7002)
    b.streams = ["someone-else"]  # a is chosen first (fewest streams); b takes the stream when a is given up
    sim = Engines({7001: "a", 7002: "b"})
    client = WatchedClient([a, b])
    records: list[dict[str, Any]] = []
    settings = Settings(_env_file=None, max_streams_per_engine=2).proxy  # type: ignore[call-arg]
    async with httpx.AsyncClient(transport=httpx.MockTransport(sim.handler)) as http:
        hub = Hub(settings, client=client, record=lambda c, **f: records.append({"category": c, **f}), http=http)
        session = hub.open("content_id", "k1", {"id": "k1"}, "rid-1")
        await async_wait_until(lambda: session.buffer.bytes_in > 10_000, timeout=5, what="bytes from a")
        assert session.claim is not None and session.claim.engine.container_id == "a"
        await asyncio.wait_for(client.watching.wait(), 5)
        client.push()  # nothing changed: the stream stays
        await asyncio.sleep(0)
        assert session.failovers == 0
        a.health_status = HealthStatus.UNHEALTHY
        client.push()
        await async_wait_until(lambda: session.claim is not None and session.claim.engine.container_id == "b"
                               and session.gaps_ms, timeout=5, what="the stream on b, with its gap")
        assert session.failovers == 1 and session.reconnects == 0
        assert sim.playbacks == ["a", "b"], "a was not asked again"
        await async_wait_until(lambda: sim.stops == ["a"], timeout=5, what="a's playback stopped by method=stop")
        assert client.ended == [("a", "engine_unhealthy")]
        assert client.reports == [], "the orchestrator said it: no report back"
        [fo] = [r for r in records if r.get("operation") == "upstream_failover"]
        assert fo["reason"] == "engine_unhealthy" and fo["container_id"] == "a"
        assert [r["reason"] for r in records if r.get("operation") == "upstream_engine_unusable"] == [
            "engine_unhealthy"]
        client.push()  # a still unhealthy, but the stream is no longer on it
        await asyncio.sleep(0.05)
        assert session.failovers == 1
        await hub.aclose()
    assert session.state == "stopped"


async def test_an_engine_gone_from_the_list_moves_its_stream() -> None:
    a, b = engine("a", port=7001), engine("b", port=7002)
    b.streams = ["someone-else"]
    client = WatchedClient([a, b])
    settings = Settings(_env_file=None, max_streams_per_engine=2).proxy  # type: ignore[call-arg]
    async with httpx.AsyncClient(transport=httpx.MockTransport(Engines({7001: "a", 7002: "b"}).handler)) as http:
        hub = Hub(settings, client=client, http=http)
        session = hub.open("content_id", "k1", {"id": "k1"}, None)
        await async_wait_until(lambda: session.buffer.bytes_in > 0, timeout=5, what="bytes from a")
        await asyncio.wait_for(client.watching.wait(), 5)
        client.list = [b]
        client.push()
        await async_wait_until(lambda: session.claim is not None and session.claim.engine.container_id == "b",
                               timeout=5, what="the stream on b")
        assert client.ended == [("a", "engine_gone")]
        await hub.aclose()


async def test_the_watch_runs_only_while_the_hub_has_sessions() -> None:
    client = WatchedClient([engine("a", port=7001)])
    settings = Settings(_env_file=None).proxy  # type: ignore[call-arg]
    async with httpx.AsyncClient(transport=httpx.MockTransport(Engines({7001: "a"}).handler)) as http:
        hub = Hub(settings, client=client, http=http)
        first = hub.open("content_id", "k1", {"id": "k1"}, None)
        await asyncio.wait_for(client.watching.wait(), 5)
        first.stop("test")
        await async_wait_until(lambda: client.watch_cancelled == 1, timeout=5, what="the watch stopped")
        client.watching.clear()
        hub.open("content_id", "k2", {"id": "k2"}, None)
        await asyncio.wait_for(client.watching.wait(), 5)
        assert client.watches == 2
        await hub.aclose()
    assert client.watch_cancelled == 2


# -- the standalone client against a fake orchestrator ------------------------------------------------------
def engine_json(cid: str, *, health: str = "healthy", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"container_id": cid, "container_name": f"n-{cid}", "host": "127.0.0.1", "port": 1,
            "labels": labels or {}, "streams": [], "health_status": health, "last_stream_usage": None}


async def test_the_http_client_reads_one_p2p_holder_per_vpn_from_the_engine_labels() -> None:
    listed = [engine_json("a1", labels={"aceorch.vpn": "gluetun-a", "aceorch.p2p_port": "5914"}),
              engine_json("a2", labels={"aceorch.vpn": "gluetun-a"}),
              engine_json("b1", labels={"aceorch.vpn": "gluetun-b", "aceorch.p2p_port": "6001"})]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/engines" and request.headers["authorization"] == "Bearer k"
        return httpx.Response(200, json=listed)

    orch = HttpOrchestrator("http://orch", api_key="k", transport=httpx.MockTransport(handler))
    engines = await orch.engines()
    assert await orch.p2p_holders() == {"a1", "b1"}
    assert [e.p2p_port for e in engines] == [5914, None, 6001] and engines[0].labels["aceorch.vpn"] == "gluetun-a"
    await orch.aclose()


async def test_the_http_client_reports_a_hang_to_the_health_report_route() -> None:
    seen: list[tuple[str, dict[str, Any], str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content), request.headers.get("x-request-id")))
        if "gone" in request.url.path:
            return httpx.Response(404, json={"detail": "engine not found"})
        return httpx.Response(200, json={"container_id": "e1", "health_status": "unhealthy", "changed": True})

    orch = HttpOrchestrator("http://orch", transport=httpx.MockTransport(handler))
    await orch.report_unhealthy("e1", "stream stalled under a live stream", "rid-9")
    await orch.report_unhealthy("gone", "stalled", None)  # a 404 is logged, never raised
    assert seen[0] == ("/engines/e1/health-report", {"reason": "stream stalled under a live stream",
                                                      "request_id": "rid-9"}, "rid-9")
    assert seen[1][0] == "/engines/gone/health-report"
    await orch.aclose()


async def test_the_http_watch_polls_the_engines_and_skips_a_failed_read() -> None:
    answers = iter([httpx.Response(200, json=[engine_json("a")]), httpx.Response(502),
                    httpx.Response(200, json=[engine_json("a", health="unhealthy")])])

    def handler(request: httpx.Request) -> httpx.Response:
        try:
            return next(answers)
        except StopIteration:
            return httpx.Response(200, json=[])

    got: list[tuple[dict[str, Engine], float]] = []
    orch = HttpOrchestrator("http://orch", transport=httpx.MockTransport(handler))
    before = time.monotonic()
    task = asyncio.create_task(orch.watch_engines(lambda engines, asof: got.append((engines, asof)),
                                                  interval_s=0.01))
    await async_wait_until(lambda: len(got) >= 2, timeout=5, what="two engine lists")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert got[0][0]["a"].health_status is HealthStatus.HEALTHY
    assert got[1][0]["a"].health_status is HealthStatus.UNHEALTHY, "the 502 was skipped"
    assert before <= got[0][1] <= got[1][1]
    await orch.aclose()
