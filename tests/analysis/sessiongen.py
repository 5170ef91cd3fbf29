"""A small generator of realistic debug sessions, independent of the writer.

Events are collected with their time offset from the session start, then written sorted by time with
``seq`` increasing across categories, every category file created (empty when unused), exactly as
debug-log.md describes the files.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aceorch.debuglog.records import CATEGORIES  # noqa: E402


def ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class SessionBuilder:
    log_dir: Path
    start: datetime
    suffix: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    #: Put an "operation" key inside begin records' labels (forces the analysis off its fast path).
    decoy_labels: bool = True
    events: list[tuple[float, int, str, dict[str, Any]]] = field(default_factory=list)
    _order: int = 0
    _containers: int = 0

    @property
    def session_id(self) -> str:
        return self.start.strftime("%Y%m%d_%H%M%S") + self.suffix

    def at(self, offset_s: float) -> datetime:
        return self.start + timedelta(seconds=offset_s)

    def emit(self, category: str, offset_s: float, **fields: Any) -> None:
        self._order += 1
        self.events.append((offset_s, self._order, category, fields))

    # -- helpers for common record shapes ---------------------------------------------------------------
    def session_start(self, **config: Any) -> None:
        cfg = {"STARTUP_TIMEOUT_S": 25, "DEBUG_SLOW_PROVISIONING_RATIO": 0.7, "API_KEY": "***"}
        cfg.update(config)
        self.config = cfg
        self.emit("session", 0.0, operation="session_start", version="0.1.0", runtime="fake", config=cfg)

    def session_end(self, offset_s: float) -> None:
        self.emit("session", offset_s, operation="session_end", dropped=0)

    def provision(
        self,
        offset_s: float,
        duration_s: float,
        *,
        success: bool = True,
        reason: str | None = None,
        error: str | None = None,
        request_id: str | None = None,
        kind: str = "start_acestream",
        name: str | None = None,
    ) -> str:
        self._containers += 1
        name = name or f"acestream-{self._containers}"
        cid = f"{self._containers:04d}" + "c" * 60
        extra = {"request_id": request_id} if request_id else {}
        self.emit(
            "provisioning",
            offset_s,
            **extra,
            operation=f"{kind}_begin",
            labels={"test": "stress", "operation": "decoy"} if self.decoy_labels else {"test": "stress"},
            image="acestream/engine:latest",
            custom_env=False,
        )
        if success:
            self.emit(
                "provisioning",
                offset_s + duration_s,
                **extra,
                operation=f"{kind}_success",
                container_id=cid,
                container_name=name,
                host_http_port=19000 + self._containers,
                duration_ms=round(duration_s * 1000.0, 2),
                success=True,
                error=None,
            )
            threshold = self.config.get("STARTUP_TIMEOUT_S", 25) * self.config.get(
                "DEBUG_SLOW_PROVISIONING_RATIO", 0.7
            )
            if duration_s > threshold:
                self.emit(
                    "stress",
                    offset_s + duration_s,
                    event_type="slow_provisioning",
                    severity="warning",
                    description=f"Provisioning took {duration_s:.2f}s (>{threshold:.1f}s threshold)",
                    container_id=cid,
                    operation=f"{kind}_success",
                    duration_ms=round(duration_s * 1000.0, 2),
                    threshold_ms=threshold * 1000.0,
                )
        else:
            self.emit(
                "provisioning",
                offset_s + duration_s,
                **extra,
                operation=f"{kind}_failed",
                error=error or f"failed: {reason}",
                reason=reason,
                duration_ms=round(duration_s * 1000.0, 2),
                success=False,
            )
        return name

    def stop(self, offset_s: float, name: str, reason: str = "api_delete", duration_s: float = 0.4) -> None:
        self.emit("provisioning", offset_s, operation="stop_engine_begin", container_name=name, reason=reason)
        self.emit(
            "provisioning",
            offset_s + duration_s,
            operation="stop_engine_success",
            container_name=name,
            reason=reason,
            duration_ms=round(duration_s * 1000.0, 2),
            success=True,
        )

    def health_cycle(self, offset_s: float, healthy: int, unhealthy: int, unknown: int = 0) -> None:
        self.emit(
            "health",
            offset_s,
            component="health",
            operation="health_monitor_cycle",
            healthy=healthy,
            unhealthy=unhealthy,
            unknown=unknown,
            total=healthy + unhealthy + unknown,
            duration_ms=12.5,
        )

    def probe_failed(self, offset_s: float, name: str) -> None:
        self.emit(
            "health",
            offset_s,
            component="health",
            operation="probe_failed",
            container_name=name,
            error="get_status timed out",
        )

    def vpn_check(self, offset_s: float, connected: bool, duration_ms: float = 8.0) -> None:
        self.emit(
            "vpn",
            offset_s,
            operation="health_check",
            connected=connected,
            health="healthy" if connected else "unhealthy",
            duration_ms=duration_ms,
            success=connected,
        )

    def vpn_down(self, offset_s: float) -> None:
        self.emit("vpn", offset_s, operation="transition", **{"from": "healthy", "to": "unhealthy"})
        self.emit(
            "stress",
            offset_s,
            event_type="vpn_disconnection",
            severity="critical",
            description="Gluetun VPN became unhealthy",
            signal="docker_health",
        )

    def vpn_up(self, offset_s: float, outage_s: float) -> None:
        self.emit("vpn", offset_s, operation="transition", **{"from": "unhealthy", "to": "healthy"})
        self.emit(
            "stress",
            offset_s,
            event_type="vpn_recovered",
            severity="info",
            description="Gluetun VPN recovered",
            outage_ms=outage_s * 1000.0,
            engines_restarted=3,
        )

    def stress(self, offset_s: float, event_type: str, severity: str, description: str, **extra: Any) -> None:
        self.emit("stress", offset_s, event_type=event_type, severity=severity, description=description, **extra)

    # -- output ------------------------------------------------------------------------------------------
    def write(self) -> str:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        lines: dict[str, list[str]] = {c: [] for c in CATEGORIES}
        for seq, (offset, _order, category, fields) in enumerate(sorted(self.events), start=1):
            record: dict[str, Any] = {
                "session_id": self.session_id,
                "timestamp": ts(self.at(offset)),
                "elapsed_seconds": round(offset, 3),
                "seq": seq,
            }
            record.update(fields)
            lines[category].append(json.dumps(record, separators=(",", ":")))
        for category, rows in lines.items():
            path = self.log_dir / f"{self.session_id}_{category}.jsonl"
            path.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
        return self.session_id


START = datetime(2025, 10, 18, 14, 44, 30, tzinfo=UTC)


def vpn_incident(log_dir: Path, start: datetime = START) -> SessionBuilder:
    """The seed's example: VPN drops at +45 s, a slow start finishes 8 s later, 4/10 engines turn unhealthy."""
    b = SessionBuilder(log_dir, start)
    b.session_start()
    rng = random.Random(7)
    for i in range(10):
        b.provision(2.0 + i * 1.5, rng.uniform(3.0, 6.0), request_id=f"req-{i}")
    for t in range(0, 120, 5):
        connected = not 45 <= t < 75
        b.vpn_check(t + 0.2, connected)
    b.vpn_down(45.1)
    b.provision(35.0, 18.4505, request_id="req-slow")  # finishes at 53.45, 8 s after the drop
    b.provision(50.0, 22.0)
    for t in range(0, 120, 20):
        unhealthy = 4 if 60 <= t <= 80 else 0
        b.health_cycle(t + 2.3, 10 - unhealthy, unhealthy)
    b.stress(
        62.3,
        "high_unhealthy_engines",
        "warning",
        "4/10 engines unhealthy (>30%)",
        unhealthy_count=4,
        total=10,
    )
    b.vpn_up(75.2, 30.1)
    b.stress(90.0, "high_unhealthy_engines_resolved", "info", "resolved", duration_ms=27700.0, samples=2)
    b.session_end(120.0)
    b.write()
    return b


def healthy(log_dir: Path, start: datetime = START) -> SessionBuilder:
    b = SessionBuilder(log_dir, start)
    b.session_start()
    for i in range(12):
        name = b.provision(1.0 + i * 2.0, 2.0 + (i % 4) * 0.5)
        if i % 3 == 0:
            b.stop(40.0 + i, name)
    for t in range(0, 80, 5):
        b.vpn_check(t, True)
    for t in range(0, 80, 20):
        b.health_cycle(t + 1.0, 8, 0)
    b.session_end(80.0)
    b.write()
    return b
