"""Stress detectors: small state machines fed by the service, one per stress situation.

Each detector turns a stream of samples into *episodes*: the first sample that sees the condition writes one
stress record; later samples that still see it are only counted (``samples``); the first sample that sees it
clear writes ``<event_type>_resolved`` with the episode's ``duration_ms`` and ``samples``.
``slow_provisioning`` is the exception: each slow provision is its own record.

Detection runs whether debug mode is on or off. Every record goes to the ``stress`` category (a no-op when
debug mode is off), into an in-memory ring of the last 1000 (``GET /debug/stress``) and to ``on_event``
(metrics). Methods are thread-safe: the writer thread reports back-pressure while the event loop reports
everything else. Time comes from the injected ``clock`` (timestamps) and ``monotonic`` (durations and
windows), so tests never sleep.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aceorch.config import Settings
from aceorch.debuglog import records
from aceorch.debuglog.writer import DebugLog
from aceorch.models import format_time, utcnow

__all__ = ["StressMonitor"]

logger = logging.getLogger("aceorch.debuglog.stress")

#: Detector limits that have no setting of their own.
FAILURE_RATE_WINDOW_S = 300
FAILURE_RATE_RATIO = 0.3
FAILURE_RATE_MIN_ATTEMPTS = 5
REPLACEMENT_WINDOW_S = 300
REPLACEMENT_MAX = 3
LOOP_LAG_THRESHOLD_MS = 100.0
RECENT_MAX = 1000

_CAPACITY_CODES = frozenset({"max_capacity", "port_pool_exhausted"})


def _pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


@dataclass
class _Episode:
    event_type: str
    started_mono: float
    started_at: str | None
    samples: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class StressMonitor:
    """Feeds the stress state machines; see the module docstring."""

    def __init__(
        self,
        debuglog: DebugLog,
        settings: Settings,
        *,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = debuglog
        self._settings = settings
        self._on_event = on_event
        self._clock = clock
        self._mono = monotonic
        self._lock = threading.RLock()
        self._recent: deque[tuple[datetime, dict[str, Any]]] = deque(maxlen=RECENT_MAX)
        self._episodes: dict[str, _Episode] = {}
        self._provisions: deque[tuple[float, bool]] = deque()
        self._replacements: deque[float] = deque()
        self._vpn_connected: dict[str, bool] = {}
        self._last_recovered: dict[str, Any] | None = None
        debuglog.set_drop_callback(self.backpressure)

    # Thresholds ---------------------------------------------------------------------------------------------
    @property
    def slow_provisioning_threshold_ms(self) -> float:
        """The duration over which a start counts as slow: ``STARTUP_TIMEOUT_S`` × ``DEBUG_SLOW_PROVISIONING_RATIO``."""
        ratio: float = self._settings.debug.debug_slow_provisioning_ratio
        timeout: int = self._settings.runtime.startup_timeout_s
        return ratio * timeout * 1000.0

    # Emitting -----------------------------------------------------------------------------------------------
    def _emit(self, event_type: str, severity: str, description: str, **extra: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "event_type": event_type,
            "severity": severity,
            "description": description,
            **extra,
        }
        now = self._clock()
        rec = self._log.log_record("stress", **fields)
        if rec is None:
            rec = {"session_id": None, "timestamp": format_time(now), **fields}
        self._recent.append((now, rec))
        if self._on_event is not None:
            try:
                self._on_event(rec)
            except Exception:  # noqa: BLE001 - a metrics hook must not break detection
                logger.exception("stress on_event callback failed")
        return rec

    def _fire(self, key: str, event_type: str, description: str, **extra: Any) -> dict[str, Any]:
        severity = records.STRESS_EVENT_TYPES[event_type]
        rec = self._emit(event_type, severity, description, **extra)
        self._episodes[key] = _Episode(event_type, self._mono(), rec.get("timestamp"))
        return rec

    def _fold(self, key: str) -> _Episode | None:
        ep = self._episodes.get(key)
        if ep is not None:
            ep.samples += 1
        return ep

    def _resolve(self, key: str, **extra: Any) -> dict[str, Any] | None:
        ep = self._episodes.pop(key, None)
        if ep is None:
            return None
        duration_ms = round(max(0.0, self._mono() - ep.started_mono) * 1000.0, 2)
        description = (
            f"{ep.event_type} resolved after {duration_ms / 1000:.1f}s "
            f"({ep.samples} sample{'s' if ep.samples != 1 else ''})"
        )
        return self._emit(
            ep.event_type + records.RESOLVED_SUFFIX,
            "info",
            description,
            duration_ms=duration_ms,
            samples=ep.samples,
            started_at=ep.started_at,
            **ep.extra,
            **extra,
        )

    def _step(self, key: str, event_type: str, holds: bool, make: Callable[[], tuple[str, dict[str, Any]]]) -> None:
        """One sample of a condition: fire on the first, fold while it holds, resolve when it clears."""
        if holds:
            if self._fold(key) is None:
                description, extra = make()
                self._fire(key, event_type, description, **extra)
        else:
            self._resolve(key)

    def active(self) -> list[str]:
        """The event types of the episodes in progress (for tests and the dashboard)."""
        with self._lock:
            return sorted(ep.event_type for ep in self._episodes.values())

    # Provisioning -------------------------------------------------------------------------------------------
    def provision_finished(
        self,
        *,
        operation: str,
        success: bool,
        duration_ms: float,
        container_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        """A provision (AceStream or generic) ended: slow_provisioning and provisioning_failure_rate."""
        with self._lock:
            threshold = self.slow_provisioning_threshold_ms
            if success and duration_ms > threshold:
                self._emit(
                    "slow_provisioning",
                    records.STRESS_EVENT_TYPES["slow_provisioning"],
                    f"Provisioning took {duration_ms / 1000:.2f}s (>{threshold / 1000:g}s threshold)",
                    container_id=container_id,
                    operation=operation,
                    duration_ms=round(float(duration_ms), 2),
                    threshold_ms=round(threshold, 2),
                )
            self._provisions.append((self._mono(), success))
            self._evaluate_failure_rate()

    def _evaluate_failure_rate(self) -> None:
        cutoff = self._mono() - FAILURE_RATE_WINDOW_S
        while self._provisions and self._provisions[0][0] < cutoff:
            self._provisions.popleft()
        attempted = len(self._provisions)
        failed = sum(1 for _, ok in self._provisions if not ok)
        holds = attempted >= FAILURE_RATE_MIN_ATTEMPTS and failed / attempted > FAILURE_RATE_RATIO

        def make() -> tuple[str, dict[str, Any]]:
            return (
                f"{failed}/{attempted} provisions failed in the last {FAILURE_RATE_WINDOW_S // 60} min "
                f"(>{_pct(FAILURE_RATE_RATIO)})",
                {"failed": failed, "attempted": attempted, "window_s": FAILURE_RATE_WINDOW_S},
            )

        self._step("provisioning_failure_rate", "provisioning_failure_rate", holds, make)

    def provision_blocked(self, *, code: str, limit: int | None = None, running: int | None = None) -> None:
        """A provision was refused. Only capacity refusals (MAX_REPLICAS, empty port pool) are stress."""
        if code not in _CAPACITY_CODES:
            return
        with self._lock:
            if self._fold("capacity_exhausted") is not None:
                return
            if code == "port_pool_exhausted":
                description = "Provision refused: no free port in the port pool"
            elif limit is not None and running is not None:
                description = f"Provision refused: {running}/{limit} engines running (maximum capacity)"
            else:
                description = "Provision refused: maximum capacity reached"
            self._fire(
                "capacity_exhausted",
                "capacity_exhausted",
                description,
                limit=limit,
                running=running,
                code=code,
            )

    def capacity_ok(self) -> None:
        """A provision was admitted again: a capacity episode, if any, is resolved."""
        with self._lock:
            self._resolve("capacity_exhausted")

    # VPN ----------------------------------------------------------------------------------------------------
    def vpn_state(self, *, connected: bool, signal: str | None = None, vpn: str | None = None) -> None:
        """The outcome of one VPN check (``vpn`` names it). healthy→down fires vpn_disconnection; down→up
        vpn_recovered. Each VPN has an episode of its own."""
        key = "vpn" if vpn is None else f"vpn:{vpn}"
        named = {} if vpn is None else {"vpn": vpn}
        label = "Gluetun VPN" if vpn is None else f"Gluetun VPN {vpn}"
        with self._lock:
            previous = self._vpn_connected.get(key)
            self._vpn_connected[key] = connected
            if not connected:
                if previous is True:
                    self._fire(key, "vpn_disconnection", f"{label} became unhealthy", signal=signal, **named)
                    self._episodes[key].extra["signal"] = signal
                else:
                    # Already down (or never seen up since start: a VPN still connecting is not an outage).
                    self._fold(key)
                return
            ep = self._episodes.get(key)
            if ep is None:
                return
            outage_ms = round(max(0.0, self._mono() - ep.started_mono) * 1000.0, 2)
            self._resolve(key)
            self._last_recovered = self._emit(
                "vpn_recovered",
                records.STRESS_EVENT_TYPES["vpn_recovered"],
                f"{label} recovered after {outage_ms / 1000:.1f}s",
                outage_ms=outage_ms,
                engines_restarted=None,
                **named,
            )

    def vpn_engines_restarted(self, count: int, vpn: str | None = None) -> None:
        """Engines restarted after the last recovery: fills in ``engines_restarted``.

        The in-memory ``vpn_recovered`` record is updated; since files are append-only, a
        ``vpn_engines_restarted`` record (info) carries the number in the ``stress`` file.
        """
        with self._lock:
            recovered = self._last_recovered
            if recovered is not None and recovered.get("engines_restarted") is None:
                recovered["engines_restarted"] = count
            self._emit(
                "vpn_engines_restarted",
                records.STRESS_EVENT_TYPES["vpn_engines_restarted"],
                f"{count} engine{'s' if count != 1 else ''} restarted after VPN recovery",
                engines_restarted=count,
                recovered_seq=recovered.get("seq") if recovered is not None else None,
                **({} if vpn is None else {"vpn": vpn}),
            )

    def vpn_failover(self, *, vpn: str, engines: list[str], streams: list[str], to: list[str]) -> None:
        """One VPN went down while others are up: its engines (and their streams) move to ``to``."""
        with self._lock:
            self._emit(
                "vpn_failover",
                records.STRESS_EVENT_TYPES["vpn_failover"],
                f"VPN {vpn} down: {len(engines)} engine(s) and {len(streams)} stream(s) move to {', '.join(to)}",
                vpn=vpn, engines=engines, streams=streams, to=to,
            )

    def vpn_restart(self, *, vpn: str, restarted: bool, reason: str) -> None:
        """A forced Gluetun restart (``restarted``) or one the restart breaker refused."""
        with self._lock:
            self._emit(
                "vpn_gluetun_restart",
                records.STRESS_EVENT_TYPES["vpn_gluetun_restart"],
                f"Gluetun {vpn} {'restarted' if restarted else 'not restarted'}: {reason}",
                vpn=vpn, restarted=restarted, reason=reason,
            )

    # Circuit breakers ---------------------------------------------------------------------------------------
    def breaker_transition(
        self, *, operation_type: str, old: str, new: str, failure_count: int, threshold: int
    ) -> None:
        """A breaker changed state: opened / reopened fire, ``→ closed`` resolves."""
        key = f"breaker:{operation_type}"
        with self._lock:
            if new == "open":
                if old == "half_open":
                    ep = self._fold(key)
                    self._emit(
                        "circuit_breaker_reopened",
                        records.STRESS_EVENT_TYPES["circuit_breaker_reopened"],
                        f"Circuit breaker ({operation_type}) reopened: its half-open trial failed",
                        operation_type=operation_type,
                        failure_count=failure_count,
                    )
                    if ep is None:
                        ep = _Episode("circuit_breaker_reopened", self._mono(), format_time(self._clock()))
                        ep.extra["operation_type"] = operation_type
                        self._episodes[key] = ep
                elif self._fold(key) is None:
                    self._fire(
                        key,
                        "circuit_breaker_opened",
                        f"Circuit breaker opened after {failure_count} failures",
                        operation_type=operation_type,
                        failure_count=failure_count,
                        threshold=threshold,
                    )
                    self._episodes[key].extra["operation_type"] = operation_type
            elif new == "half_open":
                self._fold(key)
            elif new == "closed":
                self._resolve(key)

    # Engines ------------------------------------------------------------------------------------------------
    def engines_health(self, *, unhealthy: int, total: int) -> None:
        """One health sweep's counts: high_unhealthy_engines when unhealthy/total > DEBUG_UNHEALTHY_RATIO."""
        ratio = self._settings.debug.debug_unhealthy_ratio
        holds = total >= 1 and unhealthy >= 1 and unhealthy / total > ratio
        with self._lock:

            def make() -> tuple[str, dict[str, Any]]:
                return (
                    f"{unhealthy}/{total} engines unhealthy (>{_pct(ratio)})",
                    {"unhealthy_count": unhealthy, "total": total},
                )

            self._step("high_unhealthy_engines", "high_unhealthy_engines", holds, make)

    def replacement_started(self) -> None:
        """An unhealthy engine's replacement began: engine_replacement_storm past 3 in 5 minutes."""
        with self._lock:
            self._replacements.append(self._mono())
            self._evaluate_replacements()

    def _evaluate_replacements(self) -> None:
        cutoff = self._mono() - REPLACEMENT_WINDOW_S
        while self._replacements and self._replacements[0] < cutoff:
            self._replacements.popleft()
        count = len(self._replacements)

        def make() -> tuple[str, dict[str, Any]]:
            return (
                f"{count} engine replacements in the last {REPLACEMENT_WINDOW_S // 60} min (>{REPLACEMENT_MAX})",
                {"count": count, "window_s": REPLACEMENT_WINDOW_S},
            )

        self._step("engine_replacement_storm", "engine_replacement_storm", count > REPLACEMENT_MAX, make)

    def tick(self) -> None:
        """Re-evaluate the time-window detectors, so that they clear without new events. Called by
        loop_lag."""
        with self._lock:
            if self._provisions or "provisioning_failure_rate" in self._episodes:
                self._evaluate_failure_rate()
            if self._replacements or "engine_replacement_storm" in self._episodes:
                self._evaluate_replacements()

    # Event loop and writer ----------------------------------------------------------------------------------
    def loop_lag(self, lag_ms: float) -> None:
        """One event-loop lag measurement: event_loop_lag above 100 ms."""
        with self._lock:

            def make() -> tuple[str, dict[str, Any]]:
                return (
                    f"Event loop fell behind by {lag_ms:.0f} ms (>{LOOP_LAG_THRESHOLD_MS:g} ms)",
                    {"lag_ms": round(float(lag_ms), 2)},
                )

            holds = lag_ms > LOOP_LAG_THRESHOLD_MS
            ep = self._episodes.get("event_loop_lag")
            if holds and ep is not None:
                ep.extra["max_lag_ms"] = round(max(float(lag_ms), ep.extra.get("max_lag_ms", 0.0)), 2)
            self._step("event_loop_lag", "event_loop_lag", holds, make)
            if holds and "max_lag_ms" not in self._episodes["event_loop_lag"].extra:
                self._episodes["event_loop_lag"].extra["max_lag_ms"] = round(float(lag_ms), 2)
        self.tick()

    def backpressure(self, dropped: int) -> None:
        """Records the writer dropped since its previous report (0 once it keeps up again)."""
        with self._lock:
            ep = self._episodes.get("debug_log_backpressure")
            if dropped > 0 and ep is not None:
                ep.extra["dropped_total"] = ep.extra.get("dropped_total", 0) + dropped

            def make() -> tuple[str, dict[str, Any]]:
                return (
                    f"Debug log writer dropped {dropped} record{'s' if dropped != 1 else ''} (queue full)",
                    {"dropped": dropped},
                )

            self._step("debug_log_backpressure", "debug_log_backpressure", dropped > 0, make)
            ep = self._episodes.get("debug_log_backpressure")
            if ep is not None and "dropped_total" not in ep.extra:
                ep.extra["dropped_total"] = dropped

    def adopt(self, *, event_type: str, severity: str, description: str, **extra: Any) -> dict[str, Any]:
        """Take a stress event another detector of this process decided (the embedded proxy's, whose episodes
        are its own): written to the ``stress`` file, kept for ``/debug/stress`` and passed to ``on_event``
        (metrics, the event feed), as the monitor's own are."""
        with self._lock:
            return self._emit(event_type, severity, description, **extra)

    # Reading ------------------------------------------------------------------------------------------------
    def recent(
        self,
        *,
        since: datetime | None = None,
        limit: int = 100,
        event_type: str | None = None,
        severity: str | None = None,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` matching events of the last 1000, oldest first (copies)."""
        with self._lock:
            items = list(self._recent)
        out = [
            rec
            for at, rec in items
            if (since is None or at >= since)
            and (event_type is None or rec.get("event_type") == event_type)
            and (severity is None or rec.get("severity") == severity)
        ]
        if limit <= 0:
            return []
        return [dict(rec) for rec in out[-limit:]]
