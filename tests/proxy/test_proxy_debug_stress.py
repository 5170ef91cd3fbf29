"""The proxy's stress detectors: stateful episodes (firing once, samples counted, resolved with a duration)."""

from __future__ import annotations

from typing import Any

from aceorch.proxy.debug import ProxyDebug


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make() -> tuple[ProxyDebug, list[tuple[str, dict[str, Any]]], Clock]:
    written: list[tuple[str, dict[str, Any]]] = []
    clock = Clock()
    hook = ProxyDebug(lambda category, **fields: written.append((category, fields)), monotonic=clock)
    return hook, written, clock


def stress(written: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [f for c, f in written if c == "stress"]


def test_a_slow_first_byte_fires_once_and_a_fast_one_resolves_it() -> None:
    hook, written, clock = make()
    for rid in ("a", "b"):
        hook("requests", operation="first_byte_ready", stream_key="k", request_id=rid, duration_ms=19_000)
    clock.t += 3
    hook("requests", operation="first_byte_ready", stream_key="k", request_id="c", duration_ms=300)
    fired, resolved = stress(written)
    assert fired["event_type"] == "slow_request" and fired["request_id"] == "a" and fired["state"] == "firing"
    assert resolved["event_type"] == "slow_request_resolved" and resolved["samples"] == 2
    assert resolved["duration_ms"] == 3000
    assert ("requests", {"operation": "first_byte_ready", "stream_key": "k", "request_id": "c",
                         "duration_ms": 300}) in written


def test_slow_selection_upstream_stall_and_lagging_viewers() -> None:
    hook, written, _ = make()
    hook("engine_selection", operation="select_engine", stream_key="k", duration_ms=2500, request_id="a")
    hook("stress", operation="upstream_stall", stream_key="k", container_id="c1", stall_s=10)
    hook("streams", operation="upstream_gap", stream_key="k", gap_ms=900)
    for i in range(9):
        hook("clients", operation="client_joined", stream_key="k", request_id=f"v{i}", viewers=i + 1)
    hook("clients", operation="client_lagged", stream_key="k", request_id="v0", lagged=1)  # 1 of 9: 11 %
    types = [s["event_type"] for s in stress(written)]
    assert types == ["slow_engine_selection", "upstream_stall", "upstream_stall_resolved", "viewers_lagging"]
    assert stress(written)[-1]["request_ids"] == ["v0"]
    assert hook.active() == ["slow_engine_selection", "viewers_lagging:k"]
    hook("clients", operation="client_joined", stream_key="k", request_id="v9", viewers=10)  # 1 of 10: not over
    assert stress(written)[-1]["event_type"] == "viewers_lagging_resolved"
