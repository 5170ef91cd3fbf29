"""Several VPNs: the settings that describe them, where a new engine goes, and the restart breaker's rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from aceorch.config import Settings
from aceorch.config.types import PortRange
from aceorch.control.vpn import VpnCheck, VpnMonitor, derive_health, restart_due
from aceorch.control.vpn_pool import ENGINE_VPN_LABEL, VpnPool
from aceorch.models import Engine, utcnow
from aceorch.runtime.fake import InMemoryRuntime

TWO = {"gluetun_container_names": "gluetun-a, gluetun-b", "port_range_host": "19000-19009",
       "max_active_replicas": 10}


def engine(port: int, **labels: str) -> Engine:
    return Engine(container_id=f"c{port}", container_name=f"acestream-{port}", host="127.0.0.1", port=port,
                  host_http_port=port, container_http_port=port, labels=labels)


def pool_of(settings: Settings) -> VpnPool:
    return VpnPool.build(settings, runtime=InMemoryRuntime(), http=httpx.AsyncClient())


def test_names_ranges_urls_and_keys_line_up(make_settings: Callable[..., Settings]) -> None:
    s = make_settings(**TWO, gluetun_api_urls="http://a:8000,", gluetun_api_keys="ka,", gluetun_api_key="k")
    assert s.vpn.names == ["gluetun-a", "gluetun-b"] and s.vpn_enabled
    assert s.vpn.port_ranges(s.runtime.port_range_host) == [PortRange(19000, 19004), PortRange(19005, 19009)]
    assert s.vpn.api_urls() == ["http://a:8000", None]
    keys = s.vpn.api_keys()
    assert [k.get_secret_value() if k else None for k in keys] == ["ka", "k"]
    given = make_settings(**TWO, gluetun_port_ranges="19000-19001,19008-19009")
    assert given.vpn.port_ranges(given.runtime.port_range_host) == [PortRange(19000, 19001),
                                                                     PortRange(19008, 19009)]
    one = make_settings(gluetun_container_name="gluetun")
    assert one.vpn.names == ["gluetun"]
    assert make_settings().vpn.names == [] and not make_settings().vpn_enabled


@pytest.mark.parametrize("bad", [
    {"gluetun_port_ranges": "19000-19004"},
    {"gluetun_port_ranges": "19000-19005,19005-19009"},
    {"gluetun_api_urls": "http://a:8000"},
    {"gluetun_container_names": "g,g"},
])
def test_lists_that_do_not_line_up_are_refused(make_settings: Callable[..., Settings], bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_settings(**{**TWO, **bad})


async def test_a_new_engine_goes_to_the_connected_vpn_with_the_fewest(make_settings: Callable[..., Settings]) -> None:
    pool = pool_of(make_settings(**TWO))
    a, b = pool.monitors
    assert (a.container, b.container) == ("gluetun-a", "gluetun-b")
    assert (a.ports[0], a.ports[-1], b.ports[0], b.ports[-1]) == (19000, 19004, 19005, 19009)
    assert pool.pick(frozenset()) is None, "none connected yet"
    a.last = VpnCheck(health="healthy")
    b.last = VpnCheck(health="healthy")
    assert pool.pick(frozenset()) is a, "a tie goes to the first"
    assert pool.pick(frozenset({19000})) is b
    assert pool.pick(frozenset({19000, 19005, 19006})) is a
    b.last = VpnCheck(health="unhealthy")
    assert pool.pick(frozenset({19000, 19001})) is a and pool.connected
    assert pool.pick(frozenset(range(19000, 19005))) is None, "A's range is full and B is down"
    a.last = VpnCheck(health="unhealthy")
    assert not pool.connected and pool.view().connected is False


async def test_membership_by_label_then_port_and_the_several_vpn_view(make_settings: Callable[..., Settings]) -> None:
    pool = pool_of(make_settings(**TWO))
    a, b = pool.monitors
    a.last = VpnCheck(status="running", health="healthy", signal="control_server")
    b.last = VpnCheck(status="not_found", health="unhealthy", signal="container_state")
    b.reason = "Gluetun container gluetun-b is missing"
    engines = [engine(19000), engine(19006), engine(19001, **{ENGINE_VPN_LABEL: "gluetun-b"})]
    assert [pool.member(e) for e in engines] == [a, b, b]
    assert pool.counts(engines) == {"gluetun-a": 1, "gluetun-b": 2}
    view = pool.view(engines)
    assert view.connected and view.health == "healthy" and view.container == "gluetun-a"
    assert view.vpns is not None
    assert [(v.name, v.connected, v.engines, v.signal, v.reason, v.port_range) for v in view.vpns] == [
        ("gluetun-a", True, 1, "control_server", None, "19000-19004"),
        ("gluetun-b", False, 2, "container_state", "Gluetun container gluetun-b is missing", "19005-19009"),
    ]
    b.down_since = utcnow()
    assert pool.held(engines[1]) and not pool.held(engines[0])


async def test_one_vpn_keeps_its_shape(make_settings: Callable[..., Settings]) -> None:
    pool = pool_of(make_settings(gluetun_container_name="gluetun"))
    assert not pool.several and pool.view().vpns is None and pool.view().container == "gluetun"
    assert pool.member(engine(19000)) is pool.monitors[0] and not pool.held(engine(19000))


def test_the_restart_breaker_allows_one_restart_per_window(make_settings: Callable[..., Settings]) -> None:
    m = VpnMonitor(make_settings(gluetun_container_name="g"), runtime=InMemoryRuntime(), http=httpx.AsyncClient())
    assert restart_due(m, now=100.0, timeout_s=10, window_s=60) is None, "healthy"
    m.unhealthy_since = 95.0
    assert restart_due(m, now=100.0, timeout_s=10, window_s=60) is None, "not long enough"
    assert restart_due(m, now=105.0, timeout_s=10, window_s=60) == "restart"
    assert restart_due(m, now=105.0, timeout_s=0, window_s=60) is None, "0 never restarts"
    m.restarted_at, m.unhealthy_since = 105.0, 120.0
    assert restart_due(m, now=131.0, timeout_s=10, window_s=60) == "refused"
    m.restart_refused = True
    assert restart_due(m, now=140.0, timeout_s=10, window_s=60) is None, "refused once per outage"
    m.restart_refused = False
    assert restart_due(m, now=170.0, timeout_s=10, window_s=60) == "restart", "the window is over"
    m.last = VpnCheck(status="not_found", health="unhealthy")
    assert restart_due(m, now=170.0, timeout_s=10, window_s=60) is None, "nothing to restart"


def test_derive_health_is_unchanged() -> None:
    assert derive_health("exited", None, None) == ("unhealthy", "container_state")
    assert derive_health("running", "healthy", None) == ("healthy", "docker_health")


def test_min_free_counts_only_engines_on_healthy_vpns() -> None:
    from aceorch.control.autoscaler import decide

    engines = [engine(19000 + i) for i in range(6)]
    dead = {e.container_id for e in engines[:3]}
    kwargs: dict[str, Any] = {"in_flight": 0, "now": utcnow(), "min_replicas": 6, "min_free": 4,
                              "max_replicas": 10, "idle_ttl_s": 0}
    assert decide(engines, **kwargs).start == 0
    decision = decide(engines, **kwargs, vpn_held=lambda e: e.container_id in dead)
    assert (decision.free, decision.start) == (3, 1), "3 free behind the healthy VPN: one more for MIN_FREE 4"
