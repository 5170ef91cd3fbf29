"""The service log's story: one INFO or WARNING line for each event an operator follows, debug mode on or off.

Each line is told from the debug record of the same event (engine started or failed, engine stopped, VPN down and
recovered, engines restarted after a recovery, breaker transitions, streams started and ended) and carries that
record's fields as ``extra=`` (masked as in the debug log), which the JSON log format emits. Stream lines drop to
DEBUG while more than :data:`MANY_STREAMS` streams are live, so that a busy pool does not flood the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aceorch.debuglog.masking import mask_names, mask_values

__all__ = ["Story", "MANY_STREAMS"]

logger = logging.getLogger("aceorch.story")

#: Above this many live streams, stream lines are logged at DEBUG.
MANY_STREAMS = 20
#: Codes of a start a gate refused (not a failure; the gate has its own line): told at DEBUG.
_BLOCKED = frozenset({"runtime_unavailable", "vpn_disconnected", "circuit_breaker", "max_capacity"})
#: LogRecord attribute names an ``extra=`` key must not overwrite; such fields get a trailing underscore.
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

Line = tuple[int, str] | None


def _seconds(fields: Mapping[str, Any]) -> float:
    ms = fields.get("duration_ms")
    return float(ms) / 1000 if isinstance(ms, int | float) else 0.0


def _short(cid: object) -> str:
    return str(cid)[:12] if cid else "?"


def _start_ok(f: Mapping[str, Any], story: Story) -> Line:
    return logging.INFO, (f"engine {f.get('container_name')} started on port {f.get('host_http_port')} in "
                          f"{_seconds(f):.1f} s ({f.get('source') or 'api'})")


def _start_failed(f: Mapping[str, Any], story: Story) -> Line:
    code, reason = f.get("code"), f.get("reason")
    level = logging.DEBUG if code in _BLOCKED else logging.WARNING
    kind = f"{code}/{reason}" if reason and reason != code else str(code)
    return level, f"engine start failed ({kind}, {f.get('source') or 'api'}): {f.get('error')}"


def _container_ok(f: Mapping[str, Any], story: Story) -> Line:
    return logging.INFO, f"container {f.get('container_name')} started in {_seconds(f):.1f} s"


def _container_failed(f: Mapping[str, Any], story: Story) -> Line:
    code = f.get("code")
    level = logging.DEBUG if code in _BLOCKED else logging.WARNING
    return level, f"container start failed ({code}): {f.get('error')}"


def _stopped(f: Mapping[str, Any], story: Story) -> Line:
    name = f.get("container_name") or _short(f.get("container_id"))
    return logging.INFO, f"engine {name} stopped ({f.get('reason')}) in {_seconds(f):.1f} s"


def _stop_failed(f: Mapping[str, Any], story: Story) -> Line:
    name = f.get("container_name") or _short(f.get("container_id"))
    return logging.WARNING, f"engine {name} could not be stopped ({f.get('reason')}): {f.get('error')}"


def _vpn_transition(f: Mapping[str, Any], story: Story) -> Line:
    old, new, signal = f.get("from"), f.get("to"), f.get("signal")
    if new == "healthy":
        if old == "unknown":
            return logging.INFO, "VPN connected"
        return logging.INFO, (f"VPN recovered ({old} -> healthy); engines started before the recovery restart "
                              "once it has held for VPN_RECOVERY_STABILIZE_S")
    if old == "healthy":
        return logging.WARNING, f"VPN down (healthy -> {new}, signal {signal}); provisioning waits for it"
    if old == "unknown":
        return logging.WARNING, f"VPN not connected ({new}, signal {signal}); provisioning waits for it"
    return logging.INFO, f"VPN {old} -> {new} (signal {signal})"


def _vpn_restart(f: Mapping[str, Any], story: Story) -> Line:
    name = f.get("container_name") or _short(f.get("container_id"))
    if f.get("success"):
        return logging.INFO, f"engine {name} restarted after the VPN recovery in {_seconds(f):.1f} s"
    return logging.WARNING, f"engine {name} restart after the VPN recovery failed: {f.get('error')}"


def _breaker(f: Mapping[str, Any], story: Story) -> Line:
    name, new = f.get("operation_type"), f.get("to")
    if new == "open":
        return logging.WARNING, (f"circuit breaker {name} opened after {f.get('failure_count')} failures "
                                 f"(threshold {f.get('threshold')}); {name} starts are refused until it closes")
    if new == "half_open":
        return logging.INFO, f"circuit breaker {name} half-open: one trial start is allowed"
    if new == "closed":
        return logging.INFO, f"circuit breaker {name} closed"
    return None


def _breaker_reset(f: Mapping[str, Any], story: Story) -> Line:
    return logging.INFO, f"circuit breaker {f.get('operation_type') or 'all'} reset by hand"


def _stream_started(f: Mapping[str, Any], story: Story) -> Line:
    if f.get("duplicate"):
        return None
    return story.stream_level(), f"stream {f.get('stream_id')} started on engine {_short(f.get('container_id'))}"


def _stream_ended(f: Mapping[str, Any], story: Story) -> Line:
    if f.get("duplicate") or f.get("found") is False:
        return None
    return story.stream_level(), (f"stream {f.get('stream_id')} ended ({f.get('reason')}) on engine "
                                  f"{_short(f.get('container_id'))}")


_TELLERS: dict[tuple[str, str], Callable[[Mapping[str, Any], Story], Line]] = {
    ("provisioning", "start_acestream_success"): _start_ok,
    ("provisioning", "start_acestream_failed"): _start_failed,
    ("provisioning", "start_container_success"): _container_ok,
    ("provisioning", "start_container_failed"): _container_failed,
    ("provisioning", "stop_engine_success"): _stopped,
    ("provisioning", "stop_engine_failed"): _stop_failed,
    ("vpn", "transition"): _vpn_transition,
    ("vpn", "engine_restart"): _vpn_restart,
    ("circuit_breaker", "transition"): _breaker,
    ("circuit_breaker", "manual_reset"): _breaker_reset,
    ("streams", "stream_started"): _stream_started,
    ("streams", "stream_ended"): _stream_ended,
}


class Story:
    """Turns the debug records an operator follows into service log lines (see the module docstring)."""

    def __init__(self, *, live_streams: Callable[[], int], secrets: tuple[str, ...] = ()) -> None:
        self._live_streams = live_streams
        self._secrets = tuple(s for s in secrets if s)

    def stream_level(self) -> int:
        """INFO, or DEBUG while more than MANY_STREAMS streams are live."""
        return logging.DEBUG if self._live_streams() > MANY_STREAMS else logging.INFO

    def tell(self, category: str, fields: Mapping[str, Any]) -> None:
        """Log the line of this record, if it is one of the story's events; never raises."""
        teller = _TELLERS.get((category, str(fields.get("operation"))))
        if teller is None:
            return
        try:
            line = teller(fields, self)
            if line is None or not logger.isEnabledFor(line[0]):
                return
            level, message = line
            extra = mask_values(mask_names(dict(fields)), self._secrets) if self._secrets else mask_names(
                dict(fields))
            safe = {(f"{k}_" if k in _RESERVED else k): v for k, v in extra.items()}
            safe["category"] = category
            logger.log(level, mask_values(message, self._secrets) if self._secrets else message, extra=safe)
        except Exception:  # noqa: BLE001 - the log must never break the operation it tells
            logger.debug("could not tell %s/%s", category, fields.get("operation"), exc_info=True)
