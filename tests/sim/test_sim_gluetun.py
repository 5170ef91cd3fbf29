"""The Gluetun simulator: control-server routes, API key, state control, flapping and the healthcheck."""

from __future__ import annotations

from collections.abc import Callable

from simtools import SimProcess, free_port, run_sim

from support import wait_until

StartGluetun = Callable[..., SimProcess]


def test_up_by_default_with_ip_and_forwarded_port(start_gluetun: StartGluetun) -> None:
    sim = start_gluetun({"SIM_FORWARDED_PORT": "6001", "SIM_PUBLIC_IP": "198.51.100.4"})
    assert sim.get("/v1/vpn/status").json() == {"status": "running"}
    assert sim.get("/v1/openvpn/status").json() == {"status": "running"}
    public = sim.get("/v1/publicip/ip").json()
    assert public["public_ip"] == "198.51.100.4"
    assert {"region", "country", "city", "organization"} <= set(public)
    assert sim.get("/v1/openvpn/portforwarded").json() == {"port": 6001}
    assert sim.get("/v1/portforward").json() == {"port": 6001}


def test_down_reports_stopped_no_ip_and_no_port_until_up_again(start_gluetun: StartGluetun) -> None:
    sim = start_gluetun()
    state = sim.post_state({"vpn": "down"}).json()
    assert state["vpn"] == "down"
    assert sim.get("/v1/vpn/status").json() == {"status": "stopped"}
    assert sim.get("/v1/publicip/ip").json()["public_ip"] == ""
    assert sim.get("/v1/portforward").json() == {"port": 0}
    sim.post_state({"vpn": "up", "forwarded_port": 7777, "public_ip": "192.0.2.9"})
    assert sim.get("/v1/vpn/status").json() == {"status": "running"}
    assert sim.get("/v1/openvpn/portforwarded").json() == {"port": 7777}
    assert sim.get("/v1/publicip/ip").json()["public_ip"] == "192.0.2.9"


def test_put_vpn_status_stops_and_starts_the_tunnel(start_gluetun: StartGluetun) -> None:
    sim = start_gluetun()
    assert sim.client.put("/v1/vpn/status", json={"status": "stopped"}).json() == {"outcome": "stopped"}
    assert sim.state()["vpn"] == "down"
    assert sim.client.put("/v1/vpn/status", json={"status": "bogus"}).status_code == 400


def test_api_key_is_required_when_configured(start_gluetun: StartGluetun) -> None:
    sim = start_gluetun({"SIM_API_KEY": "s3cret"})
    assert sim.get("/v1/vpn/status").status_code == 401
    assert sim.get("/v1/portforward", headers={"X-API-Key": "wrong"}).status_code == 401
    response = sim.get("/v1/vpn/status", headers={"X-API-Key": "s3cret"})
    assert response.status_code == 200 and response.json() == {"status": "running"}
    state = sim.state()  # the control route needs no key
    assert state["api_key_required"] is True
    assert state["counters"]["unauthorized"] == 2


def test_bad_control_input_gets_400(start_gluetun: StartGluetun) -> None:
    sim = start_gluetun()
    for body in (
        {"vpn": "sideways"},
        {"forwarded_port": 70000},
        {"public_ip": 5},
        {"flap_every_s": 0},
        {"x": 1},
    ):
        response = sim.post_state(body)
        assert response.status_code == 400, body
    assert sim.state()["vpn"] == "up"


def test_healthcheck_exit_codes_follow_the_vpn_state(start_gluetun: StartGluetun) -> None:
    sim = start_gluetun({"SIM_API_KEY": "k"})
    port = str(sim.port)
    assert run_sim(["gluetun", "--healthcheck", "--port", port]).returncode == 0
    sim.post_state({"vpn": "down"})
    down = run_sim(["gluetun", "--healthcheck"], {"SIM_PORT": port})
    assert down.returncode == 1
    assert "down" in down.stdout
    sim.post_state({"vpn": "up"})
    assert run_sim(["gluetun", "--healthcheck", "--port", port]).returncode == 0
    sim.terminate()
    gone = run_sim(["gluetun", "--healthcheck", "--port", port])
    assert gone.returncode == 1
    assert "no answer" in gone.stdout


def test_healthcheck_fails_when_nothing_listens() -> None:
    assert run_sim(["gluetun", "--healthcheck", "--port", str(free_port())]).returncode == 1


def test_flapping_flips_the_state_on_its_own(start_gluetun: StartGluetun) -> None:
    sim = start_gluetun({"SIM_FLAP_EVERY_S": "0.3"})
    wait_until(lambda: sim.get("/v1/vpn/status").json()["status"] == "stopped", timeout=5)
    wait_until(lambda: sim.get("/v1/vpn/status").json()["status"] == "running", timeout=5)
    assert sim.state()["counters"]["flips"] >= 2
    sim.post_state({"flap_every_s": None, "vpn": "down"})
    assert sim.state()["flap_every_s"] is None


def test_starts_down_when_asked(start_gluetun: StartGluetun) -> None:
    sim = start_gluetun(args=["--vpn", "down"])
    assert sim.get("/v1/vpn/status").json() == {"status": "stopped"}
