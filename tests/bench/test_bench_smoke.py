"""Smoke test of the benchmarks: each runs at a tiny size (``--quick``) as its own process and must write a
result file with the expected keys. It checks that the benchmark code still runs against today's aceorch;
it never judges speed (the figures of a quick run mean nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

COMMON = {"name", "title", "when", "machine", "quick", "goal", "ratio", "met", "summary"}
#: Keys of each result file beyond the common ones.
EXPECTED: dict[str, set[str]] = {
    "p1_overhead": {"n", "aceorch", "raw", "overhead_p50_ms", "samples", "baseline"},
    "p2_concurrency": {"concurrency", "singles", "aceorch", "raw", "tiny_process", "aceorch_vs_raw_wall"},
    "p3_writer": {"ours", "naive", "json_dumps_ns", "cost_ratio"},
    "p4_debug_onoff": {"rps_off", "rps_on", "rps_control", "control_ratio", "round_ratios",
                       "debug_records_written"},
    "p5_loop_lag": {"n", "max_lag_ms", "runs"},
    "p7_scale": {"n", "engine", "sweep", "bare_sweep", "engines_ms", "healthz_ms", "health_counts",
                 "engines_listed", "children_rss_mb"},
}


def run_bench(args: list[str], results: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENCH_RESULTS_DIR": str(results), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def load(results: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((results / f"{name}.json").read_text())
    return data


def check_common(data: dict[str, Any], name: str) -> None:
    assert COMMON | EXPECTED[name] <= data.keys(), sorted(COMMON | EXPECTED[name] - data.keys())
    assert data["name"] == name
    assert data["quick"] is True
    assert isinstance(data["met"], bool)
    assert isinstance(data["ratio"], (int, float)) and data["ratio"] > 0
    assert data["machine"]["nproc"] >= 1 and data["machine"]["ram_gb"] > 0


@pytest.mark.parametrize("name", ["p3_writer", "p4_debug_onoff", "p5_loop_lag", "p7_scale"])
def test_quick_run_writes_result(name: str, tmp_path: Path) -> None:
    proc = run_bench([f"bench.{name}", "--quick"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f"SUMMARY {name}:" in proc.stdout
    data = load(tmp_path, name)
    check_common(data, name)
    if name == "p3_writer":
        # every record logged reached the file: the writer loses nothing at this size
        assert data["ours"]["provisioning_lines_on_disk"] >= data["ours"]["expected_lines"]
        assert data["naive"]["lines_on_disk"] == data["naive"]["records"]
    if name == "p7_scale":
        assert data["health_counts"]["healthy"] == data["n"] == data["engines_listed"]
    if name == "p5_loop_lag":
        assert [r["debug_mode"] for r in data["runs"]] == [False, True]
        assert all(r["health_counts"]["healthy"] == data["n"] for r in data["runs"])
    if name == "p4_debug_onoff":
        assert data["debug_records_written"] >= data["requests_per_mode"]


@pytest.mark.docker
@pytest.mark.parametrize("name", ["p1_overhead", "p2_concurrency"])
def test_quick_docker_run_writes_result(name: str, tmp_path: Path, docker_engine: None) -> None:
    proc = run_bench([f"bench.{name}", "--quick"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    data = load(tmp_path, name)
    check_common(data, name)
    if name == "p1_overhead":
        assert len(data["samples"]["aceorch_s"]) == len(data["samples"]["raw_s"]) == data["n"]


def test_runner_runs_one_and_prints_the_table(tmp_path: Path) -> None:
    proc = run_bench(["bench", "p3", "--quick"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    table = proc.stdout.split("=== summary", 1)[1]
    assert "p3 " in table and ("MET" in table or "MISSED" in table)
    assert (tmp_path / "p3_writer.json").exists()


def test_runner_refuses_an_unknown_name(tmp_path: Path) -> None:
    proc = run_bench(["bench", "p9"], tmp_path)
    assert proc.returncode == 2
    assert "unknown benchmark" in proc.stderr
