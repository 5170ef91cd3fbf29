"""The API's response contract: every body keeps its field names, JSON types, null-ability and time format.

acexy and the dashboard decode these bodies with fixed types (Go structs: times are RFC 3339 with ``Z`` or null,
``is_live`` is a bool, lists are bare arrays). One scripted scenario drives every route over the in-memory
runtime and reduces each response to its *shape*; ``response_contract.json`` holds the shapes the API gave when
the contract was recorded, and the test fails on any renamed, dropped, added or retyped field.

A shape is ``"null"``, ``"bool"``, ``"int"``, ``"float"``, ``"string"``, ``"time"`` (a string in the fixed
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` form), ``{"object": {name: shape}}`` or ``{"array": [distinct item shapes]}``.

Re-record (only when a contract change is intended) with::

    PYTHONPATH=tests .venv/bin/python tests/api/test_response_contract.py --write
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aceorch.api import create_app
from aceorch.config import Settings
from aceorch.errors import PortUnavailable, RuntimeFailure
from aceorch.models import StatSnapshot, parse_time
from aceorch.runtime.fake import InMemoryRuntime
from aceorch.store import make_store
from support import wait_until

GOLDEN = Path(__file__).with_name("response_contract.json")
API_KEY = "contract-key-1"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
#: Per-request headers that drop the client's default key.
NO_AUTH = {"Authorization": ""}
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
#: Loops that would change a body between two runs (health probes, stat collection, autoscaling) never tick.
QUIET = {"health_check_interval_s": 3600, "collect_interval_s": 3600, "autoscale_interval_s": 3600,
         "monitor_interval_s": 3600, "gluetun_health_check_interval_s": 3600}


def shape(value: Any) -> Any:
    """The JSON shape of one decoded value (see the module docstring)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "time" if TIME.match(value) else "string"
    if isinstance(value, list):
        items: list[Any] = []
        for item in value:
            s = shape(item)
            if s not in items:
                items.append(s)
        return {"array": items}
    if isinstance(value, dict):
        return {"object": {str(k): shape(v) for k, v in sorted(value.items())}}
    raise TypeError(f"not a JSON value: {value!r}")


class Recorder:
    """Sends requests through a TestClient and keeps, per ``label``, the status, content type, the
    ``WWW-Authenticate`` and ``Retry-After`` headers, and the body shape."""

    def __init__(self) -> None:
        self.shapes: dict[str, Any] = {}

    def call(self, client: TestClient, label: str, method: str, url: str, expect: int, **kwargs: Any) -> Any:
        """Send one request, check its status, record its shape under ``label`` and return the decoded body."""
        resp = client.request(method, url, **kwargs)
        assert resp.status_code == expect, f"{label}: {resp.status_code} {resp.text[:300]}"
        assert label not in self.shapes, f"label {label!r} used twice"
        ctype = resp.headers.get("content-type", "").split(";")[0]
        entry: dict[str, Any] = {"status": resp.status_code, "content_type": ctype}
        if "www-authenticate" in resp.headers:
            entry["www_authenticate"] = resp.headers["www-authenticate"]
        if "retry-after" in resp.headers:
            entry["retry_after"] = "int" if resp.headers["retry-after"].isdigit() else "string"
        if ctype == "application/json":
            body = resp.json()
            entry["body"] = shape(body)
            self.shapes[label] = entry
            return body
        self.shapes[label] = entry
        return None


def _settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db_url": f"sqlite:///{tmp}/orch.db",
        "debug_log_dir": str(tmp / "debug_logs"),
        "min_replicas": 0,
        "min_free_replicas": 0,
        "min_provision_interval_s": 0,
        "api_key": API_KEY,
        "provision_wait_for": "running",
        "runtime": "docker",
        "max_replicas": 4,
        "auto_delete": False,
        **QUIET,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _started_body(engine: dict[str, Any], key: str, stream_id: str) -> dict[str, Any]:
    return {
        "container_id": engine["container_id"],
        "engine": {"host": engine["host"], "port": engine["port"]},
        "stream": {"key_type": "content_id", "key": key},
        "session": {"playback_session_id": f"ps-{key}", "stat_url": f"http://{engine['host']}:{engine['port']}/ace/stat/x/{key}",
                    "command_url": "", "is_live": 1},
        "labels": {"stream_id": stream_id, "client": "contract"},
    }


def run_main_scenario(tmp: Path, rec: Recorder) -> None:
    """Every route of an app without VPN: provisioning, streams and stats, status, containers, debug, errors."""
    runtime = InMemoryRuntime(images={"acestream/engine:latest", "nginx:alpine"})
    settings = _settings(tmp, allowed_images="nginx:alpine,missing:latest")
    store = make_store(f"sqlite:///{tmp}/orch.db")
    with TestClient(create_app(settings, runtime=runtime, store=store), headers=AUTH) as client:
        call = rec.call
        # service
        call(client, "GET /healthz", "GET", "/healthz", 200)
        call(client, "GET /readyz", "GET", "/readyz", 200)
        call(client, "GET /metrics", "GET", "/metrics", 200)
        call(client, "GET /nowhere 404", "GET", "/nowhere", 404)
        # empty lists and statuses before anything runs
        call(client, "GET /engines empty", "GET", "/engines", 200)
        call(client, "GET /streams empty", "GET", "/streams", 200)
        call(client, "GET /debug/bundle 404 no session", "GET", "/debug/bundle", 404, headers=AUTH)
        # auth
        call(client, "POST /provision/acestream 401", "POST", "/provision/acestream", 401, json={}, headers=NO_AUTH)
        call(client, "POST /provision/acestream 403", "POST", "/provision/acestream", 403, json={},
             headers={"Authorization": "Bearer wrong"})
        call(client, "POST /provision/acestream 401 bad json", "POST", "/provision/acestream", 401,
             content=b"{not json", headers={"Content-Type": "application/json", **NO_AUTH})
        call(client, "POST /events/stream_started 401", "POST", "/events/stream_started", 401, json={},
             headers=NO_AUTH)
        call(client, "DELETE /containers 401", "DELETE", "/containers/x", 401, headers=NO_AUTH)
        # provisioning
        first = call(client, "POST /provision/acestream", "POST", "/provision/acestream", 200,
                     json={"labels": {"test": "contract", "flag": True}, "env": {"SIM_A": 1}}, headers=AUTH)
        call(client, "POST /provision/acestream no body", "POST", "/provision/acestream", 200, headers=AUTH)
        call(client, "POST /provision/acestream 422", "POST", "/provision/acestream", 422,
             json={"labels": {"a": None}}, headers=AUTH)
        call(client, "POST /provision/acestream 422 bad json", "POST", "/provision/acestream", 422,
             content=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
        call(client, "POST /provision/acestream 413", "POST", "/provision/acestream", 413,
             content=b"x" * (1024 * 1024 + 10), headers=AUTH)
        runtime.fail_next("create", PortUnavailable("port 19999 is taken"))
        call(client, "POST /provision/acestream 409", "POST", "/provision/acestream", 409,
             json={"host_port": 19999}, headers=AUTH)
        call(client, "POST /provision/acestream 400", "POST", "/provision/acestream", 400,
             json={"image": "missing:latest"}, headers=AUTH)
        runtime.fail_next("create", RuntimeFailure("boom"))
        call(client, "POST /provision/acestream 500", "POST", "/provision/acestream", 500, json={}, headers=AUTH)
        generic = call(client, "POST /provision", "POST", "/provision", 200,
                       json={"image": "nginx:alpine", "labels": {"role": "web"}, "env": {"SIM_X": "1"},
                             "ports": {"80/tcp": None}, "name_prefix": "web"}, headers=AUTH)
        call(client, "POST /provision 422", "POST", "/provision", 422, json={"ports": {"80": 1}}, headers=AUTH)
        call(client, "POST /scale up", "POST", "/scale/3", 200, headers=AUTH)
        call(client, "POST /scale 422", "POST", "/scale/-1", 422, headers=AUTH)
        call(client, "POST /provision/acestream fourth", "POST", "/provision/acestream", 200,
             json={}, headers=AUTH)
        call(client, "POST /provision/acestream 503", "POST", "/provision/acestream", 503, json={}, headers=AUTH)
        # engines
        engines = call(client, "GET /engines", "GET", "/engines", 200)
        engine = next(e for e in engines if e["container_id"] == first["container_id"])
        # streams
        s1 = call(client, "POST /events/stream_started", "POST", "/events/stream_started", 200,
                  json=_started_body(engine, "aaa111", "st-1"), headers=AUTH)
        call(client, "POST /events/stream_started again", "POST", "/events/stream_started", 200,
             json=_started_body(engine, "aaa111", "st-1"), headers=AUTH)
        call(client, "POST /events/stream_started 422", "POST", "/events/stream_started", 422,
             json={"engine": {"host": "h"}}, headers=AUTH)
        s2 = call(client, "POST /events/stream_started second", "POST", "/events/stream_started", 200,
                  json=_started_body(engine, "bbb222", "st-2"), headers=AUTH)
        s3 = call(client, "POST /events/stream_started third", "POST", "/events/stream_started", 200,
                  json=_started_body(engine, "ccc333", "st-3"), headers=AUTH)
        snap_ts = parse_time(s1["started_at"])
        for i in range(2):
            client.portal.call(lambda i=i: store.add_stat(  # type: ignore[misc]
                s1["id"], StatSnapshot(ts=snap_ts, peers=3 + i, speed_down=120, speed_up=10, downloaded=1000 * i,
                                       uploaded=10 * i, status="dl"), keep=10))
        client.portal.call(lambda: store.add_stat(s1["id"], StatSnapshot(ts=snap_ts), keep=10))
        call(client, "GET /streams/{id}/stats", "GET", f"/streams/{s1['id']}/stats", 200)
        call(client, "GET /streams/{id}/stats since", "GET", f"/streams/{s1['id']}/stats",
             200, params={"since": "2000-01-01T00:00:00Z"})
        call(client, "GET /streams/{id}/stats 422", "GET", f"/streams/{s1['id']}/stats", 422,
             params={"since": "yesterday"})
        call(client, "GET /streams/{id}/stats unknown", "GET", "/streams/nope/stats", 200)
        call(client, "GET /engines/{id}", "GET", f"/engines/{engine['container_id']}", 200)
        call(client, "GET /engines/{id} 404", "GET", "/engines/nope", 404)
        call(client, "POST /engines/{id}/health-report", "POST", f"/engines/{engine['container_id']}/health-report",
             200, json={"reason": "hung under a live stream", "request_id": "rid-1"}, headers=AUTH)
        call(client, "POST /engines/{id}/health-report 404", "POST", "/engines/nope/health-report", 404,
             json={"reason": "x"}, headers=AUTH)
        call(client, "POST /engines/{id}/health-report 422", "POST",
             f"/engines/{engine['container_id']}/health-report", 422, json={}, headers=AUTH)
        call(client, "POST /events/stream_ended", "POST", "/events/stream_ended", 200,
             json={"stream_id": s2["id"], "reason": "client_left"}, headers=AUTH)
        call(client, "POST /events/stream_ended again", "POST", "/events/stream_ended", 200,
             json={"stream_id": s2["id"]}, headers=AUTH)
        call(client, "POST /events/stream_ended unknown", "POST", "/events/stream_ended", 200,
             json={"stream_id": "nope"}, headers=AUTH)
        call(client, "POST /events/stream_ended 422", "POST", "/events/stream_ended", 422, json={}, headers=AUTH)
        call(client, "GET /streams", "GET", "/streams", 200)
        call(client, "GET /streams started", "GET", "/streams", 200, params={"status": "started"})
        call(client, "GET /streams ended", "GET", "/streams", 200,
             params={"status": "ended", "container_id": engine["container_id"]})
        call(client, "GET /streams 422", "GET", "/streams", 422, params={"status": "paused"})
        call(client, "DELETE /streams/{id}", "DELETE", f"/streams/{s3['id']}", 200, headers=AUTH)
        call(client, "DELETE /streams/{id} 404", "DELETE", "/streams/nope", 404, headers=AUTH)
        # status
        call(client, "GET /orchestrator/status", "GET", "/orchestrator/status", 200)
        call(client, "GET /vpn/status disabled", "GET", "/vpn/status", 200)
        call(client, "GET /health/status", "GET", "/health/status", 200)
        call(client, "POST /health/circuit-breaker/reset", "POST", "/health/circuit-breaker/reset", 200, headers=AUTH)
        call(client, "POST /health/circuit-breaker/reset general", "POST", "/health/circuit-breaker/reset", 200,
             params={"operation_type": "general"}, headers=AUTH)
        call(client, "POST /health/circuit-breaker/reset 400", "POST", "/health/circuit-breaker/reset", 400,
             params={"operation_type": "nope"}, headers=AUTH)
        # containers
        call(client, "GET /containers/{id}", "GET", f"/containers/{first['container_id']}", 200)
        call(client, "GET /containers/{id} generic", "GET", f"/containers/{generic['container_id']}", 200)
        call(client, "GET /containers/{id} 404", "GET", "/containers/nope", 404)
        call(client, "GET /by-label", "GET", "/by-label", 200, params={"key": "test", "value": "contract"},
             headers=AUTH)
        call(client, "GET /by-label none", "GET", "/by-label", 200, params={"key": "test", "value": "none"},
             headers=AUTH)
        call(client, "GET /by-label 422", "GET", "/by-label", 422, headers=AUTH)
        call(client, "DELETE /containers/{id}", "DELETE", f"/containers/{generic['container_id']}", 200, headers=AUTH)
        call(client, "DELETE /containers/{id} 404", "DELETE", "/containers/nope", 404, headers=AUTH)
        call(client, "POST /scale down", "POST", "/scale/0", 200, headers=AUTH)
        call(client, "POST /gc", "POST", "/gc", 200, headers=AUTH)
        # debug
        call(client, "GET /debug/status off", "GET", "/debug/status", 200)
        # The first enable answers before or after the writer's first flush (last_flush_at null or a time):
        # sent, not recorded; the bodies below come once a flush happened.
        assert client.post("/debug/enable", headers=AUTH).status_code == 200
        wait_until(lambda: client.get("/debug/status").json()["last_flush_at"], "the debug writer's first flush")
        call(client, "POST /debug/enable again", "POST", "/debug/enable", 200, headers=AUTH)
        call(client, "GET /debug/status on", "GET", "/debug/status", 200)
        call(client, "GET /debug/bundle", "GET", "/debug/bundle", 200, headers=AUTH)
        call(client, "GET /debug/bundle 422", "GET", "/debug/bundle", 422, params={"session": "x"}, headers=AUTH)
        # Filtered: under load the loop-lag detector may add events of its own.
        call(client, "GET /debug/stress", "GET", "/debug/stress", 200, params={"event_type": "capacity_exhausted"})
        call(client, "GET /debug/stress 422", "GET", "/debug/stress", 422, params={"limit": 0})
        # the event log: the first engine event is the first start (stress events vary under load: filtered out)
        call(client, "GET /events", "GET", "/events", 200, params={"type": "engine", "limit": 1})
        call(client, "GET /events 422", "GET", "/events", 422, params={"limit": 0})
        call(client, "GET /history 422", "GET", "/history", 422, params={"range": "2d"})
        call(client, "POST /debug/disable", "POST", "/debug/disable", 200, headers=AUTH)
        # the runtime goes away
        runtime.available = False
        call(client, "POST /provision/acestream 503 runtime", "POST", "/provision/acestream", 503, json={},
             headers=AUTH)
        call(client, "GET /containers/{id} 503", "GET", f"/containers/{first['container_id']}", 503)


def run_vpn_scenario(tmp: Path, rec: Recorder) -> None:
    """An app whose VPN container is missing: the enabled VPN body and the vpn_disconnected refusal."""
    runtime = InMemoryRuntime()
    settings = _settings(tmp, gluetun_container_name="gluetun", gluetun_health_check_interval_s=1)
    with TestClient(create_app(settings, runtime=runtime), headers=AUTH) as client:
        wait_until(lambda: client.get("/vpn/status").json()["last_check_at"], "the VPN monitor's first check")
        rec.call(client, "GET /vpn/status enabled", "GET", "/vpn/status", 200)
        rec.call(client, "GET /orchestrator/status vpn", "GET", "/orchestrator/status", 200)
        rec.call(client, "POST /provision/acestream 503 vpn", "POST", "/provision/acestream", 503, json={},
                 headers=AUTH)


def capture(tmp: Path) -> dict[str, Any]:
    """Run both scenarios and return every recorded shape, keyed by label."""
    rec = Recorder()
    (tmp / "main").mkdir()
    (tmp / "vpn").mkdir()
    run_main_scenario(tmp / "main", rec)
    run_vpn_scenario(tmp / "vpn", rec)
    return rec.shapes


def diff(golden: Any, actual: Any, where: str = "$") -> list[str]:
    """Every difference between two shapes, as ``path: golden != actual`` lines."""
    if isinstance(golden, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key in sorted(set(golden) | set(actual)):
            if key not in actual:
                out.append(f"{where}.{key}: dropped (was {json.dumps(golden[key])})")
            elif key not in golden:
                out.append(f"{where}.{key}: added ({json.dumps(actual[key])})")
            else:
                out.extend(diff(golden[key], actual[key], f"{where}.{key}"))
        return out
    if isinstance(golden, list) and isinstance(actual, list):
        if len(golden) != len(actual):
            return [f"{where}: {json.dumps(golden)} != {json.dumps(actual)}"]
        return [line for i, (g, a) in enumerate(zip(golden, actual, strict=True))
                for line in diff(g, a, f"{where}[{i}]")]
    return [] if golden == actual else [f"{where}: {json.dumps(golden)} != {json.dumps(actual)}"]


@pytest.fixture
def captured(tmp_path: Path) -> dict[str, Any]:
    return capture(tmp_path)


def test_every_response_keeps_its_recorded_shape(captured: dict[str, Any]) -> None:
    golden = json.loads(GOLDEN.read_text())
    problems = diff(golden, captured)
    assert not problems, "response contract changed:\n" + "\n".join(problems)


def test_the_shape_check_catches_renames_drops_and_retypes() -> None:
    base = shape({"started_at": "2025-01-01T00:00:00.000000Z", "is_live": True, "ended_at": None})
    assert diff(base, shape({"started_at": "2025-01-01T00:00:00.000000Z", "is_live": 1, "ended_at": None}))
    assert diff(base, shape({"started_at": "2025-01-01T00:00:00Z", "is_live": True, "ended_at": None}))
    assert diff(base, shape({"start": "2025-01-01T00:00:00.000000Z", "is_live": True, "ended_at": None}))
    assert diff(base, shape({"started_at": "2025-01-01T00:00:00.000000Z", "is_live": True}))
    assert diff(shape([1]), shape({"items": [1]}))
    assert not diff(base, shape({"ended_at": None, "is_live": False, "started_at": "2030-12-31T23:59:59.999999Z"}))


def _app_for_openapi(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path), runtime=InMemoryRuntime()), headers=AUTH) as client:
        yield client


@pytest.fixture
def openapi(tmp_path: Path) -> dict[str, Any]:
    gen = _app_for_openapi(tmp_path)
    client = next(gen)
    try:
        doc: dict[str, Any] = client.get("/openapi.json").json()
    finally:
        gen.close()
    return doc


JSON_LESS: dict[tuple[str, str], str] = {
    ("get", "/metrics"): "text/plain",
    ("get", "/debug/bundle"): "application/gzip",
    ("get", "/ace/getstream"): "video/MP2T",
    ("get", "/ace/manifest.m3u8"): "application/vnd.apple.mpegurl",
    ("get", "/ace/hls/{stream_id}/{seq}.ts"): "video/MP2T",
    ("get", "/playlist.m3u"): "audio/x-mpegurl",
    ("post", "/playlist.m3u"): "audio/x-mpegurl",
}


def test_openapi_declares_a_response_schema_for_every_route(openapi: dict[str, Any]) -> None:
    missing: list[str] = []
    for path, ops in openapi["paths"].items():
        for method, op in ops.items():
            ok = op["responses"].get("200", {})
            content = ok.get("content", {})
            if (method, path) in JSON_LESS:
                if not content:
                    missing.append(f"{method.upper()} {path}: no content type")
                continue
            schema = content.get("application/json", {}).get("schema", {})
            if not schema or schema == {}:
                missing.append(f"{method.upper()} {path}: no 200 schema")
    assert not missing, "\n".join(missing)


def test_openapi_declares_the_bearer_scheme(openapi: dict[str, Any]) -> None:
    schemes = openapi.get("components", {}).get("securitySchemes", {})
    assert any(s.get("type") == "http" and s.get("scheme", "").lower() == "bearer" for s in schemes.values())
    op = openapi["paths"]["/provision/acestream"]["post"]
    assert op.get("security"), op


def _write() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shapes = capture(Path(tmp))
    GOLDEN.write_text(json.dumps(shapes, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(shapes)} response shapes to {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: test_response_contract.py --write")
    _write()

