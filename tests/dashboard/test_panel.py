"""The dashboard at /panel/ in headless Debian Chromium, against a live aceorch server with simulator engines."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from aceorch_live import API_KEY, AUTH, LiveServer, port_refuses
from playwright.sync_api import Dialog, Page, expect

from support import wait_until

pytestmark = pytest.mark.browser

CONTENT = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"


def open_panel(page: Page, srv: LiveServer, *, key: str | None = API_KEY) -> None:
    page.goto(f"{srv.url}/panel" + (f"?key={key}" if key else ""))
    page.wait_for_function("() => Number(document.body.dataset.refreshed || 0) >= 1", timeout=10_000)


def test_panel_takes_the_key_and_shows_engines_streams_chart_stress(
    live: Callable[..., LiveServer], page: Page, artifacts: Path
) -> None:
    srv = live(circuit_breaker_failure_threshold=1, circuit_breaker_recovery_timeout_s=300)
    e1 = srv.provision()
    e2 = srv.provision()
    _, stream = srv.started(e1["host_http_port"], CONTENT)

    open_panel(page, srv)
    # ?key= went to localStorage and left the address bar; /panel answered 308 to /panel/ keeping the query
    assert page.evaluate("localStorage.getItem('aceorch.apiKey')") == API_KEY
    assert page.url == f"{srv.url}/panel/"
    expect(page.get_by_test_id("api-key")).to_have_value(API_KEY)
    expect(page.get_by_test_id("key-state")).to_have_text("stored")

    # engines as the API reports them
    rows = page.get_by_test_id("engine-row")
    expect(rows).to_have_count(2)
    api_engines = {e["container_id"]: e for e in srv.get("/engines")}
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.id)")) == set(api_engines) == {
        e1["container_id"], e2["container_id"]}
    first = page.locator(f'[data-testid="engine-row"][data-id="{e1["container_id"]}"]')
    expect(first.get_by_test_id("engine-name")).to_have_text(e1["container_name"])
    expect(first.get_by_test_id("engine-id")).to_have_text(e1["container_id"][:12])
    expect(first.get_by_test_id("engine-addr")).to_have_text(f"127.0.0.1:{e1['host_http_port']}")
    expect(first.get_by_test_id("engine-streams")).to_have_text("1")
    expect(first.get_by_test_id("engine-idle")).to_have_text("busy")
    second = page.locator(f'[data-testid="engine-row"][data-id="{e2["container_id"]}"]')
    expect(second.get_by_test_id("engine-streams")).to_have_text("0")
    expect(second.get_by_test_id("engine-idle")).to_have_text(re.compile(r"^\d+s$"))
    expect(page.get_by_test_id("engines-count")).to_have_text("2")
    # CPU and memory, sampled in the background from the runtime (here the children's /proc)
    expect(first.get_by_test_id("engine-mem")).to_have_text(re.compile(r"^\d+\.\d MiB$"), timeout=15_000)
    expect(first.get_by_test_id("engine-cpu")).to_have_text(re.compile(r"^\d+\.\d %$"), timeout=15_000)
    sampled = {e["container_id"]: e for e in srv.get("/engines")}[e1["container_id"]]
    assert sampled["memory_bytes"] > 1 << 20 and sampled["cpu_percent"] is not None

    # the stream, its engine by name, and a live chart of its stats
    srow = page.locator(f'[data-testid="stream-row"][data-id="{stream["id"]}"]')
    expect(srow).to_have_count(1)
    expect(srow.get_by_test_id("stream-engine")).to_have_text(e1["container_name"])
    expect(srow.get_by_test_id("stream-status")).to_contain_text("started")
    page.wait_for_function(
        "() => Number(document.getElementById('stream-chart').dataset.points) >= 3", timeout=15_000)
    expect(srow.get_by_test_id("stream-peers")).not_to_have_text("–")
    expect(page.get_by_test_id("chart-title")).to_contain_text(stream["id"])

    # orchestrator summary and VPN (disabled)
    expect(page.get_by_test_id("orch-status")).to_have_text("healthy")
    expect(page.get_by_test_id("can-provision")).to_have_text("yes")
    expect(page.get_by_test_id("blocked-reason")).to_have_text("none")
    expect(page.get_by_test_id("orch-streams")).to_contain_text("1 active")
    expect(page.get_by_test_id("vpn-enabled")).to_have_text("no")
    expect(page.get_by_test_id("vpn-status")).to_have_text("disabled")
    expect(page.get_by_test_id("vpn-port")).to_have_text("–")

    # a real stress event: an engine that fails to start opens the general breaker (threshold 1)
    failed = srv.client.post("/provision/acestream", json={"env": {"SIM_FAIL_START": "1"}}, headers=AUTH)
    assert failed.status_code == 500 and failed.json()["detail"]["code"] == "general_error"
    assert any(ev["event_type"] == "circuit_breaker_opened" for ev in srv.get("/debug/stress"))
    opened = page.locator('[data-testid="stress-event"][data-type="circuit_breaker_opened"]')
    expect(opened).to_have_count(1)
    expect(opened).to_have_attribute("data-severity", "critical")
    expect(page.get_by_test_id("breaker-state-general")).to_have_text("open")
    expect(page.get_by_test_id("blocked-reason")).to_have_text("Circuit breaker is open")
    expect(page.get_by_test_id("can-provision")).to_have_text("no")
    expect(page.get_by_test_id("error-banner")).to_be_hidden()

    shot = artifacts / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000

    # reset the breaker from the UI
    page.get_by_test_id("reset-breaker-general").click()
    expect(page.get_by_test_id("breaker-state-general")).to_have_text("closed")
    assert srv.get("/health/status")["circuit_breakers"]["general"]["state"] == "closed"
    expect(page.get_by_test_id("can-provision")).to_have_text("yes")


def test_deleting_an_engine_from_the_panel_stops_it(live: Callable[..., LiveServer], page: Page) -> None:
    srv = live()
    e1 = srv.provision()
    e2 = srv.provision()
    _, stream = srv.started(e1["host_http_port"], CONTENT)
    open_panel(page, srv)
    expect(page.get_by_test_id("engine-row")).to_have_count(2)

    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.locator(f'[data-testid="engine-row"][data-id="{e1["container_id"]}"]').get_by_test_id("delete-engine").click()

    expect(page.get_by_test_id("engine-row")).to_have_count(1)
    expect(page.get_by_test_id("engine-row")).to_have_attribute("data-id", e2["container_id"])
    assert e1["container_name"] in dialogs[0]
    assert srv.engine_ids() == [e2["container_id"]]
    wait_until(lambda: port_refuses(e1["host_http_port"]), "the deleted engine's port to refuse connections")
    assert not port_refuses(e2["host_http_port"])
    assert srv.stream(stream["id"])["end_reason"] == "engine_deleted"
    expect(page.get_by_test_id("error-banner")).to_be_hidden()
    # the ended stream is hidden by default and shown with "show ended"
    expect(page.get_by_test_id("stream-row")).to_have_count(0)
    page.get_by_test_id("show-ended").check()
    expect(page.locator(f'[data-testid="stream-row"][data-id="{stream["id"]}"]')).to_contain_text("engine_deleted")


def test_api_errors_are_shown_in_the_banner(live: Callable[..., LiveServer], page: Page) -> None:
    srv = live()
    eng = srv.provision()
    # reads need the key too: without one the panel says so and shows no engine
    open_panel(page, srv, key=None)
    expect(page.get_by_test_id("key-state")).to_have_text("not set")
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("GET /engines: 401 missing bearer token")
    expect(page.get_by_test_id("engine-row")).to_have_count(0)
    page.on("dialog", lambda d: d.accept())

    # Save checks the key against the API first: a wrong key is refused, not stored
    page.get_by_test_id("api-key").fill("wrong-key")
    page.get_by_test_id("save-key").click()
    expect(page.get_by_test_id("key-state")).to_have_text("rejected: 403 invalid token; not stored")
    assert page.evaluate("localStorage.getItem('aceorch.apiKey')") is None
    expect(banner).to_contain_text("GET /engines: 401 missing bearer token")
    expect(page.get_by_test_id("engine-row")).to_have_count(0)

    # the right key: the reads succeed, their errors clear themselves, the engine shows
    page.get_by_test_id("api-key").fill(API_KEY)
    page.get_by_test_id("save-key").click()
    expect(page.get_by_test_id("key-state")).to_have_text("stored")
    expect(page.get_by_test_id("engine-row")).to_have_count(1)
    expect(banner).to_be_hidden()

    # an action refused by the API is reported: a stored key that went wrong (rotated on the server), on the
    # breaker reset and the delete
    page.evaluate("localStorage.setItem('aceorch.apiKey', 'wrong-key')")
    page.get_by_test_id("reset-all-breakers").click()
    expect(banner).to_contain_text("POST /health/circuit-breaker/reset: 403 invalid token")
    page.get_by_test_id("delete-engine").click()
    expect(banner).to_contain_text(f"DELETE /containers/{eng['container_id']}: 403 invalid token")
    assert srv.engine_ids() == [eng["container_id"]]

    page.get_by_test_id("api-key").fill(API_KEY)
    page.get_by_test_id("save-key").click()
    page.get_by_test_id("error-dismiss").click()
    expect(banner).to_be_hidden()


def test_debug_toggle_and_bundle_download(live: Callable[..., LiveServer], page: Page, tmp_path: Path) -> None:
    srv = live()
    open_panel(page, srv)
    toggle = page.get_by_test_id("debug-toggle")
    expect(page.get_by_test_id("debug-enabled")).to_have_text("off")
    expect(page.get_by_test_id("bundle-download")).to_be_disabled()

    toggle.click()
    expect(page.get_by_test_id("debug-enabled")).to_have_text("on (api)")
    status = srv.get("/debug/status")
    assert status["enabled"] is True and status["enabled_by"] == "api"
    expect(page.get_by_test_id("debug-session")).to_have_text(status["session_id"])

    with page.expect_download() as info:
        page.get_by_test_id("bundle-download").click()
    download = info.value
    assert download.suggested_filename == f"aceorch-debug-{status['session_id']}.tar.gz"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    data = saved.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        names = tar.getnames()
    assert f"{status['session_id']}/manifest.json" in names
    expect(page.get_by_test_id("error-banner")).to_be_hidden()

    toggle.click()
    expect(page.get_by_test_id("debug-enabled")).to_have_text("off")
    assert srv.get("/debug/status")["enabled"] is False
