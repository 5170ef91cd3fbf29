"""The standalone proxy's debug mode on and off at run time (``/debug/enable``, ``/debug/disable``,
``/debug/status``), behind the API key like ``/proxy/streams``; records go to the session only while it is on."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from aceorch.config import Settings
from aceorch.proxy.app import create_proxy_app

KEY = {"Authorization": "Bearer proxy-key-1"}


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_debug_mode_toggles_at_run_time_behind_the_api_key(tmp_path: Path) -> None:
    folder = tmp_path / "proxy_logs"
    settings = Settings(_env_file=None, api_key="proxy-key-1", debug_mode=False,
                        debug_log_dir=str(tmp_path / "orch"), proxy_debug_log_dir=str(folder))
    app = create_proxy_app(settings, "http://127.0.0.1:9")
    with TestClient(app) as client:
        assert client.get("/debug/status").status_code == 401
        assert client.post("/debug/enable", headers={"Authorization": "Bearer nope"}).status_code == 403
        assert client.post("/debug/disable").status_code == 401
        off = client.get("/debug/status", headers=KEY).json()
        assert off["enabled"] is False and off["files"] == [] and not folder.exists()
        client.get("/ace/getstream")  # debug off: a viewer request leaves no record

        on = client.post("/debug/enable", headers=KEY).json()
        assert on["changed"] is True and on["enabled"] is True and on["enabled_by"] == "api"
        sid = on["session_id"]
        assert {f["category"] for f in on["files"]} == {"session", "requests", "engine_selection", "provisioning",
                                                        "streams", "clients", "stress", "errors"}
        assert on["log_dir"] == str(folder)
        assert client.post("/debug/enable", headers=KEY).json()["changed"] is False
        bad = client.get("/ace/getstream", headers={"X-Request-ID": "toggle-1"})
        assert bad.status_code == 400

        done = client.post("/debug/disable", headers=KEY).json()
        assert done["changed"] is True and done["enabled"] is False and done["session_id"] == sid
        assert client.post("/debug/disable", headers=KEY).json()["changed"] is False
        client.get("/ace/getstream", headers={"X-Request-ID": "toggle-2"})  # off again: not written
    requests = lines(folder / f"{sid}_requests.jsonl")
    assert [(r["request_id"], r["status"]) for r in requests] == [("toggle-1", 400)]
    session_ops = [r["operation"] for r in lines(folder / f"{sid}_session.jsonl")]
    assert session_ops[0] == "session_start" and "debug_disabled" in session_ops and session_ops[-1] == "session_end"
    assert not (tmp_path / "orch").exists()  # the orchestrator's folder is not the proxy's


def test_debug_routes_are_open_without_an_api_key(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, debug_mode=True, debug_log_dir=str(tmp_path / "logs"))
    with TestClient(create_proxy_app(settings, "http://127.0.0.1:9")) as client:
        status = client.get("/debug/status").json()
        assert status["enabled"] is True and status["enabled_by"] == "env"
        assert client.post("/debug/disable").json()["changed"] is True
        assert client.get("/debug/status").json()["enabled"] is False
