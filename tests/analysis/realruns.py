"""Debug sessions recorded by REAL runs: the real ``aceorch serve`` against the simulators, one fault each.

Each ``run_*`` function starts an orchestrator with ``DEBUG_MODE=true`` in a fresh folder, drives it over HTTP
until the fault it injects has visibly happened (polling with deadlines, never sleeping), stops it gracefully
(so every record is on disk) and returns a :class:`RealRun`: the folder, the HTTP answers it got, and how
long it took. Nothing here reads aceorch's analysis code: the helpers at the bottom compute the expected
numbers from the JSONL files on their own, for the golden tests to compare with ``aceorch debug …``.

Process-runtime scenarios (engines are ``python -m aceorch.sim engine`` processes) need no Docker; the VPN
scenario needs Docker and the gluetun-sim image (fixture ``docker_engine``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from orchestrator_proc import Orchestrator, free_port  # noqa: E402

from support import wait_until  # noqa: E402

__all__ = ["RealRun", "SCENARIOS", "REPORT_CATEGORIES", "run_scenario", "recorded", "timings", "records", "hms",
           "slow_threshold_ms", "ts"]

#: Categories ``aceorch debug report`` aggregates per operation.
REPORT_CATEGORIES = ("provisioning", "performance", "autoscaler", "circuit_breaker", "streams", "errors",
                     "health", "vpn")


@dataclass
class RealRun:
    name: str
    work: Path
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def log_dir(self) -> Path:
        return self.work / "debug_logs"

    @property
    def session(self) -> str:
        ids = sorted({p.name.split("_session.jsonl")[0] for p in self.log_dir.glob("*_session.jsonl")})
        assert len(ids) == 1, ids
        return ids[0]

    def records(self, category: str) -> list[dict[str, Any]]:
        return records(self.log_dir, category)


def records(log_dir: Path, category: str) -> list[dict[str, Any]]:
    """Every record of a category, file by file in name order, line by line (like ``cat … | jq``)."""
    return [json.loads(line) for f in session_files(log_dir, category)
            for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]


def session_files(log_dir: Path, category: str) -> list[Path]:
    return sorted(log_dir.glob(f"*_{category}.jsonl"))


def slow_threshold_ms(log_dir: Path) -> float:
    """STARTUP_TIMEOUT_S × DEBUG_SLOW_PROVISIONING_RATIO, as the session_start record's config says."""
    start = next(r for r in records(log_dir, "session") if r.get("operation") == "session_start")
    config = start["config"]
    return float(config["STARTUP_TIMEOUT_S"]) * float(config["DEBUG_SLOW_PROVISIONING_RATIO"]) * 1000.0


def ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def hms(text: str) -> str:
    return ts(text).strftime("%H:%M:%S")


# -- running ----------------------------------------------------------------------------------------------

#: Settings every scenario shares: debug on, quick health sweeps, short startup timeout (threshold 0.7 × 4 s).
BASE_ENV = {
    "DEBUG_MODE": "true",
    "STARTUP_TIMEOUT_S": "4",
    "HEALTH_CHECK_INTERVAL_S": "1",
    "HEALTH_FAILURE_THRESHOLD": "1",
    "HEALTH_UNHEALTHY_GRACE_PERIOD_S": "3600",
    "AUTOSCALE_INTERVAL_S": "3600",
}


@contextmanager
def orchestrator(work: Path, env: dict[str, str]) -> Iterator[Orchestrator]:
    work.mkdir(parents=True, exist_ok=True)
    o = Orchestrator(work, {**BASE_ENV, **env})
    try:
        o.start()
        yield o
        code = o.stop()  # graceful: the writer flushes everything and writes session_end
        assert code in (0, -15), o.logs()
    finally:
        o.close()


def process_env() -> dict[str, str]:
    low = free_port(22000, 28900)  # outside APP_PORT picks (30000-38999) and the defaults
    return {"RUNTIME": "process", "PORT_RANGE_HOST": f"{low}-{low + 40}"}


def _hang(port: int) -> None:
    httpx.post(f"http://127.0.0.1:{port}/__sim/state", json={"engine_mode": "hang"}, timeout=5).raise_for_status()


def _unhealthy(o: Orchestrator) -> int:
    return int(o.client.get("/health/status").json()["unhealthy_engines"])


def run_clean(work: Path) -> dict[str, Any]:
    """Three successful provisions and nothing else."""
    with orchestrator(work, process_env()) as o:
        replies = [o.provision({"labels": {"test": "clean"}}) for _ in range(3)]
        assert [r.status_code for r in replies] == [200] * 3, [r.text for r in replies]
        # Let the health monitor see every engine healthy at least once.
        wait_until(lambda: all(e["health_status"] == "healthy" for e in o.engines()), timeout=20,
                   what="all engines healthy")
    return {"containers": [r.json()["container_id"] for r in replies]}


def run_breaker(work: Path) -> dict[str, Any]:
    """One good start, then engines that exit at start until the breaker opens (threshold 2), then a refusal."""
    with orchestrator(work, {**process_env(), "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "2"}) as o:
        ok = o.provision({})
        assert ok.status_code == 200, ok.text
        failures = [o.provision({"env": {"SIM_FAIL_START": "1"}}) for _ in range(2)]
        assert [f.status_code for f in failures] == [500, 500], [f.text for f in failures]
        blocked = o.provision({})
        assert blocked.status_code == 503 and blocked.json()["detail"]["code"] == "circuit_breaker", blocked.text
    return {"ok": ok.json()["container_id"], "failures": [f.json() for f in failures], "blocked": blocked.json()}


def run_capacity(work: Path) -> dict[str, Any]:
    """MAX_REPLICAS=1: the second provision is refused with max_capacity."""
    with orchestrator(work, {**process_env(), "MAX_REPLICAS": "1"}) as o:
        ok = o.provision({})
        assert ok.status_code == 200, ok.text
        refused = o.provision({})
        assert refused.status_code == 503 and refused.json()["detail"]["code"] == "max_capacity", refused.text
    return {"ok": ok.json()["container_id"], "refused": refused.json()}


def run_slow_under_load(work: Path) -> dict[str, Any]:
    """Four engines started at once, each taking 4.4 s to open its port (threshold 0.7 × 6 s = 4.2 s, and 1.6 s
    of margin before the startup timeout); none fails."""
    with orchestrator(work, {**process_env(), "STARTUP_TIMEOUT_S": "6"}) as o, ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: o.provision({"env": {"SIM_STARTUP_DELAY_S": "4.4"}}), range(4)))
        assert [r.status_code for r in replies] == [200] * 4, [r.text for r in replies]
    return {"containers": [r.json()["container_id"] for r in replies]}


def run_hanging(work: Path) -> dict[str, Any]:
    """Two engines start fine; then one hangs (answers nothing) and the health monitor marks it unhealthy."""
    with orchestrator(work, process_env()) as o:
        replies = [o.provision({}) for _ in range(2)]
        assert [r.status_code for r in replies] == [200] * 2, [r.text for r in replies]
        wait_until(lambda: all(e["health_status"] == "healthy" for e in o.engines()), timeout=20,
                   what="both engines healthy first")
        hung = replies[0].json()
        _hang(hung["host_http_port"])
        wait_until(lambda: _unhealthy(o) >= 1, timeout=20, what="the hung engine unhealthy")
    return {"hung": hung["container_id"], "hung_name": hung["container_name"],
            "containers": [r.json()["container_id"] for r in replies]}


#: Ports gluetun-sim publishes for the VPN scenario (distinct from the other Docker tests' pools).
VPN_POOL = range(19850, 19856)


def run_vpn_flap(work: Path) -> dict[str, Any]:
    """Docker + gluetun-sim: two engines, the VPN drops (a provision is refused) and comes back (engines are
    restarted), then a slow provision and two of three engines hang: the seed's richest story."""
    name = f"gluetun-{uuid.uuid4().hex[:8]}"
    control_port = free_port()
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--label", "aceorch.test=1",
         "-p", f"127.0.0.1:{control_port}:8000",
         "-p", f"{VPN_POOL.start}-{VPN_POOL.stop - 1}:{VPN_POOL.start}-{VPN_POOL.stop - 1}",
         "aceorch/gluetun-sim:latest"], check=True, capture_output=True, timeout=60)

    def vpn(state: str) -> None:
        httpx.post(f"http://127.0.0.1:{control_port}/__sim/state", json={"vpn": state},
                   timeout=5).raise_for_status()

    env = {
        "RUNTIME": "docker", "STARTUP_TIMEOUT_S": "7",
        "GLUETUN_CONTAINER_NAME": name, "GLUETUN_API_URL": f"http://127.0.0.1:{control_port}",
        "GLUETUN_HEALTH_CHECK_INTERVAL_S": "1", "GLUETUN_STARTUP_WAIT_S": "20", "VPN_RECOVERY_STABILIZE_S": "1",
        "PORT_RANGE_HOST": f"{VPN_POOL.start}-{VPN_POOL.start + 49}", "MAX_ACTIVE_REPLICAS": str(len(VPN_POOL)),
    }
    facts: dict[str, Any] = {"gluetun": name}
    try:
        with orchestrator(work, env) as o:
            def connected() -> bool:
                return bool(o.client.get("/vpn/status").json()["connected"])

            wait_until(connected, timeout=30, what="VPN connected")
            first = [o.provision({}) for _ in range(2)]
            assert [r.status_code for r in first] == [200] * 2, [r.text for r in first]
            vpn("down")
            wait_until(lambda: not connected(), timeout=10, what="VPN down")
            refused = o.provision({})
            assert refused.status_code == 503 and refused.json()["detail"]["code"] == "vpn_disconnected"
            vpn("up")
            wait_until(connected, timeout=15, what="VPN back")
            wait_until(lambda: len([r for r in records(work / "debug_logs", "vpn")
                                    if r.get("operation") == "engine_restart"]) >= 2,
                       timeout=60, what="both engines restarted after recovery")
            # Slow: the engine opens its port after 5.2 s; the threshold is 0.7 × 7 s = 4.9 s.
            slow = o.provision({"env": {"SIM_STARTUP_DELAY_S": "5.2"}})
            assert slow.status_code == 200, slow.text
            engines = o.engines()
            wait_until(lambda: all(e["health_status"] == "healthy" for e in o.engines()), timeout=30,
                       what="all engines healthy")
            for e in engines[:2]:
                _hang(e["port"])
            wait_until(lambda: _unhealthy(o) >= 2, timeout=30, what="two hung engines unhealthy")
            facts.update({"first": [r.json()["container_id"] for r in first], "refused": refused.json(),
                          "slow": slow.json()["container_id"], "hung": [e["container_id"] for e in engines[:2]],
                          "total": len(engines)})
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)
    return facts


SCENARIOS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "clean": run_clean,
    "breaker": run_breaker,
    "capacity": run_capacity,
    "slow_under_load": run_slow_under_load,
    "hanging": run_hanging,
    "vpn_flap": run_vpn_flap,
}


def run_scenario(name: str, work: Path) -> RealRun:
    begin = time.monotonic()
    facts = SCENARIOS[name](work)
    return RealRun(name=name, work=work, facts=facts, seconds=time.monotonic() - begin)


#: Runs recorded in this pytest process, shared by the test modules (the files are only read afterwards).
_RECORDED: dict[str, RealRun] = {}


def recorded(name: str, factory: Any) -> RealRun:
    """The scenario's run, recorded on first use in this pytest process (``factory``: tmp_path_factory)."""
    if name not in _RECORDED:
        _RECORDED[name] = run_scenario(name, factory.mktemp(name) / "orchestrator")
    return _RECORDED[name]


def timings() -> dict[str, float]:
    return {n: round(r.seconds, 1) for n, r in _RECORDED.items()}
