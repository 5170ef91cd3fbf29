"""Run Debian's ``prometheus`` as a child process with a config and a data dir of its own, on a free port."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml
from orchestrator_proc import free_port

from support import wait_until

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "aceorch.json"

#: What Grafana puts in place of its variables, for running a panel's PromQL straight against Prometheus.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "${job}": ".+",
    "$job": ".+",
    "${instance}": ".+",
    "$instance": ".+",
}


def fast_rules(path: Path, for_: str = "1s") -> Path:
    """A copy of the alert rules with every ``for:`` shortened to ``for_``."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule["for"] = for_
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def grafana_expr(expr: str) -> str:
    """A panel query with Grafana's variables replaced by concrete values."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, f"an unknown Grafana variable in {expr!r}"
    return expr


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel of the dashboard."""
    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]


class Prometheus:
    """One Prometheus server scraping ``target`` every second, evaluating ``rules`` every second."""

    def __init__(self, workdir: Path, *, target: str, bearer: str, rules: Path) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: run scripts/ensure-system.sh (installs Debian's prometheus package)"
        self.binary = binary
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{
                "job_name": "aceorch",
                "metrics_path": "/metrics",
                "authorization": {"type": "Bearer", "credentials": bearer},
                "static_configs": [{"targets": [target]}],
            }],
        }
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = self.dir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def start(self) -> Prometheus:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.logs()
            try:
                return self.client.get("/-/ready").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=30, what="prometheus ready")
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, **params: Any) -> Any:
        """A Prometheus HTTP API call; its ``data`` (the call must answer ``status: success``)."""
        r = self.client.get(f"/api/v1/{path}", params=params)
        body = r.json()
        assert r.status_code == 200 and body.get("status") == "success", (path, params, r.text)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        out: list[dict[str, Any]] = data["result"]
        return out

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        """The firing alerts of that name."""
        return [a for a in self.api("alerts")["alerts"]
                if a["labels"].get("alertname") == alertname and a["state"] == "firing"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.client.close()
