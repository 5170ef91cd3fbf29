"""Real Docker: an ``aceorch serve`` and a standalone ``aceorch proxy`` in debug mode, laid out as the user's
document expects (``debug_logs/`` and ``../proxy/debug_logs/``); five viewers on three channels make three
provisions, which the document's script matches and ``debug correlate`` pairs by request id."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_proxy_debug import CHANNELS, guide_script, watch  # noqa: E402

pytestmark = pytest.mark.docker


def test_standalone_proxy_and_orchestrator_in_debug_mode_correlate(orch: Callable[..., Any],
                                                                  standalone: Callable[..., Any]) -> None:
    o = orch(DEBUG_MODE="true", DEBUG_LOG_DIR="./debug_logs", MIN_REPLICAS="0", MIN_FREE_REPLICAS="0")
    pdir = o.cwd.parent / "proxy" / "debug_logs"
    p = standalone(o, DEBUG_MODE="true", PROXY_DEBUG_LOG_DIR=str(pdir), PROXY_LINGER_S="60")
    last = 0.0
    seen: set[int] = set()
    for rid, channel in [("d1", 0), ("d2", 0), ("d3", 1), ("d4", 1), ("d5", 2)]:
        if channel not in seen:
            time.sleep(max(0.0, 1.2 - (time.monotonic() - last)))  # the script pairs every begin within 1 s
            last = time.monotonic()
            seen.add(channel)
        watch(f"http://127.0.0.1:{p.port}/ace/getstream?id={CHANNELS[channel]}", rid)
    p.close()
    o.close()
    for path in [*pdir.glob("*.jsonl"), *(o.cwd / "debug_logs").glob("*.jsonl")]:
        with path.open() as f:
            subprocess.run(["jq", "-c", "."], stdin=f, capture_output=True, check=True, timeout=30)
    out = subprocess.run([sys.executable, "-c", guide_script()], cwd=o.cwd, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.count("Matched provision:") == 3, out
    assert all(float(x) >= 0 for x in re.findall(r"Latency:\s+(-?[\d.]+)s", out)), out
    res = subprocess.run([sys.executable, "-m", "aceorch", "debug", "correlate", "--dir", "debug_logs",
                          "--proxy-dir", "../proxy/debug_logs", "--json"], cwd=o.cwd, capture_output=True,
                         text=True, timeout=60, check=True)
    result = json.loads(res.stdout)
    assert result["matched"] == {"request_id": 3, "time_window": 0, "unmatched": 0}
    assert sorted(r["request_id"] for r in result["requests"]) == ["d1", "d3", "d5"]
    res = subprocess.run([sys.executable, "-m", "aceorch", "debug", "trace", "d5", "--dir", "debug_logs",
                          "--proxy-dir", "../proxy/debug_logs"], cwd=o.cwd, capture_output=True, text=True,
                         timeout=60, check=True)
    for op in ("select_engine", "provision_request", "start_acestream_begin", "start_acestream_success",
               "provision_response", "first_byte_ready", "viewer_request"):
        assert op in res.stdout, res.stdout
