"""The standalone proxy's debug mode against an orchestrator in debug mode (process runtime, no Docker): the
folders laid out as the debug-mode guide expects, its correlation script run unchanged, ``debug correlate``
joining by request id and ``debug trace`` following one viewer."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "streams"))
from aceorch_live import live_server, live_settings  # noqa: E402
from standalone import proxy_server  # noqa: E402

from aceorch.cli.debug import app as debug_app  # noqa: E402

SEED = Path(__file__).resolve().parents[1] / "seed" / "seed.txt"
CHANNELS = ["0a4848271c91ce2d8965ce416267c250470000" + f"{i:02d}" for i in range(3)]


def guide_script() -> str:
    """The Example Correlation Script of the user's document, byte for byte."""
    text = SEED.read_text()
    section = text[text.index("### Example Correlation Script"):]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m is not None
    return m.group(1)


@pytest.fixture(autouse=True)
def fast_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine processes inherit the environment: playback starts half a second after getstream."""
    monkeypatch.setenv("SIM_TIME_TO_DL_S", "0.5")


def watch(url: str, rid: str, n: int = 20_000) -> None:
    """One viewer: open the stream with its own request id, read ``n`` bytes, leave."""
    with httpx.stream("GET", url, timeout=60, headers={"X-Request-ID": rid}) as resp:
        assert resp.status_code == 200, resp.read()
        got = 0
        for chunk in resp.iter_raw():
            got += len(chunk)
            if got >= n:
                return


def records(folder: Path, pattern: str) -> list[dict[str, object]]:
    """Every record of the files matching ``pattern``, each line checked to be one JSON object."""
    out = []
    for path in sorted(folder.glob(pattern)):
        for line in path.read_text().splitlines():
            out.append(json.loads(line))
    return out


def test_five_viewers_on_three_channels_correlate_by_the_guide_and_by_request_id(tmp_path: Path) -> None:
    orch_dir = tmp_path / "orch"
    proxy_dir = tmp_path / "proxy"
    orch_settings = live_settings(orch_dir, debug_mode=True, debug_log_dir=str(orch_dir / "debug_logs"))
    proxy_settings = live_settings(proxy_dir, debug_mode=True, debug_log_dir=str(tmp_path / "unused"),
                                   proxy_debug_log_dir=str(proxy_dir / "debug_logs"), proxy_linger_s=30)
    viewers = [("v1", 0), ("v2", 0), ("v3", 1), ("v4", 1), ("v5", 2)]
    with live_server(orch_settings) as orch, proxy_server(proxy_settings, orch.url) as proxy:
        last_new = 0.0
        seen: set[int] = set()
        for rid, channel in viewers:
            if channel not in seen:
                # The guide's script pairs every begin within 1 s of a request: keep new channels further apart.
                time.sleep(max(0.0, 1.2 - (time.monotonic() - last_new)))
                last_new = time.monotonic()
                seen.add(channel)
            watch(f"{proxy}/ace/getstream?id={CHANNELS[channel]}", rid)
    pdir = proxy_dir / "debug_logs"
    odir = orch_dir / "debug_logs"
    assert not (tmp_path / "unused").exists()
    names = {p.name.split("_", 2)[2] for p in pdir.glob("*.jsonl")}
    assert names == {f"{c}.jsonl" for c in ("session", "requests", "engine_selection", "provisioning", "streams",
                                           "clients", "stress", "errors")}
    asks = [r for r in records(pdir, "*_provisioning.jsonl") if r["operation"] == "provision_request"]
    assert sorted(r["request_id"] for r in asks) == ["v1", "v3", "v5"]
    begins = [r for r in records(odir, "*_provisioning.jsonl") if r.get("operation") == "start_acestream_begin"]
    assert sorted(str(r.get("request_id")) for r in begins) == ["v1", "v3", "v5"]
    reqs = [r for r in records(pdir, "*_requests.jsonl") if r["operation"] == "viewer_request"]
    assert sorted(r["request_id"] for r in reqs) == ["v1", "v2", "v3", "v4", "v5"]
    assert all(r["status"] == 200 and r["client"] == "127.0.0.0/24" and r["bytes"] > 0 for r in reqs)

    out = subprocess.run([sys.executable, "-c", guide_script()], cwd=orch_dir, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.count("Matched provision:") == 3, out
    assert all(float(x) >= 0 for x in re.findall(r"Latency:\s+(-?[\d.]+)s", out)), out

    runner = CliRunner()
    res = runner.invoke(debug_app, ["correlate", "--dir", str(odir), "--proxy-dir", str(pdir), "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    assert result["matched"] == {"request_id": 3, "time_window": 0, "unmatched": 0}
    assert sorted(r["request_id"] for r in result["requests"]) == ["v1", "v3", "v5"]
    assert all(r["outcome"] == "ready" and r["proxy_to_orchestrator_ms"] >= 0 for r in result["requests"])
    # The viewer's side: every viewer got a first byte, those who caused a provision after the engine was ready.
    assert result["viewers"] == {"total": 5, "served": 5, "refused": 0, "provisioned": 3}
    assert all(r["viewer_ttfb_ms"] >= r["proxy_to_ready_ms"] > 0 for r in result["requests"])
    assert result["latency"]["viewer_ttfb"]["count"] == 5

    res = runner.invoke(debug_app, ["trace", "v3", "--dir", str(odir), "--proxy-dir", str(pdir), "--json"])
    assert res.exit_code == 0, res.output
    ops = [(r["side"], r["operation"]) for r in json.loads(res.output)]
    for step in [("proxy", "client_joined"), ("proxy", "select_engine"), ("proxy", "provision_request"),
                 ("orchestrator", "start_acestream_begin"), ("orchestrator", "start_acestream_success"),
                 ("proxy", "provision_response"), ("proxy", "first_byte_ready"), ("proxy", "viewer_request")]:
        assert step in ops, (step, ops)
    assert ops.index(("proxy", "provision_request")) < ops.index(("orchestrator", "start_acestream_begin"))
    res = runner.invoke(debug_app, ["trace", "v3", "--dir", str(odir), "--proxy-dir", str(pdir)])
    assert res.exit_code == 0 and "start_acestream_begin" in res.output and "first_byte_ready" in res.output


def test_the_embedded_proxy_gives_the_same_pairs_in_the_orchestrators_session(tmp_path: Path) -> None:
    settings = live_settings(tmp_path, debug_mode=True, debug_log_dir=str(tmp_path / "debug_logs"),
                             proxy_linger_s=30)
    seen: set[int] = set()
    last = 0.0
    with live_server(settings) as orch:
        for rid, channel in [("e1", 0), ("e2", 0), ("e3", 1), ("e4", 1), ("e5", 2)]:
            if channel not in seen:
                time.sleep(max(0.0, 1.2 - (time.monotonic() - last)))  # as above: new channels 1 s apart
                last = time.monotonic()
                seen.add(channel)
            watch(f"{orch.url}/ace/getstream?id={CHANNELS[channel]}", rid)
    odir = tmp_path / "debug_logs"
    runner = CliRunner()
    res = runner.invoke(debug_app, ["correlate", "--dir", str(odir), "--proxy-dir", str(odir), "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    assert result["matched"] == {"request_id": 3, "time_window": 0, "unmatched": 0}
    assert sorted(r["request_id"] for r in result["requests"]) == ["e1", "e3", "e5"]
    assert result["viewers"]["served"] == 5 and all(r["viewer_ttfb_ms"] > 0 for r in result["requests"])
    res = runner.invoke(debug_app, ["trace", "e3", "--dir", str(odir), "--json"])
    rows = json.loads(res.output)
    ops = [r["operation"] for r in rows]
    assert ops.index("provision_request") < ops.index("start_acestream_begin") < ops.index(
        "start_acestream_success") < ops.index("first_byte_ready"), ops
    # The proxy's records are in the session's categories of their own names, marked as the proxy's.
    by_cat = {(r["category"], r["operation"]): r["record"] for r in rows}
    for cat, op in [("requests", "viewer_request"), ("requests", "first_byte_ready"),
                    ("engine_selection", "select_engine"), ("provisioning", "provision_request"),
                    ("provisioning", "provision_response"), ("clients", "client_joined")]:
        assert by_cat[(cat, op)]["component"] == "proxy", (cat, op)
    assert by_cat[("provisioning", "start_acestream_begin")].get("component") is None
    proxy_streams = [r for r in records(odir, "*_streams.jsonl") if r.get("component") == "proxy"]
    assert {r["operation"] for r in proxy_streams} >= {"stream_started", "stream_ended"}
    assert not [r for r in records(odir, "*.jsonl") if str(r.get("operation", "")).startswith("proxy_")]
