"""The debug-log record schema: names, shapes and file-name rules, and the one place sessions are found.

A debug session is a set of JSONL files, one per category, named ``<session_id>_<category>.jsonl``. Each
line is one record that starts with the common fields (:class:`CommonFields`) and then carries the fields of
its kind. Shared by the writer (retention), the stress detectors and :mod:`aceorch.analysis`, which may
import this module and nothing else of ``debuglog``; it therefore depends on the standard library only, so
that a copied log folder can be read without the service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, TypedDict, get_args

__all__ = [
    "CATEGORIES",
    "PROXY_CATEGORIES",
    "PROXY_STRESS_EVENT_TYPES",
    "Category",
    "SEVERITIES",
    "Severity",
    "SESSION_ID_RE",
    "FILE_NAME_RE",
    "ANY_FILE_NAME_RE",
    "COMMON_FIELDS",
    "SESSION_OPERATIONS",
    "PROVISIONING_OPERATIONS",
    "START_FAILURE_REASONS",
    "STOP_REASONS",
    "STRESS_EVENT_TYPES",
    "RESOLVED_SUFFIX",
    "CommonFields",
    "SessionStartRecord",
    "SessionEndRecord",
    "ProvisioningRecord",
    "StressRecord",
    "StressResolvedRecord",
    "ErrorRecord",
    "SessionFiles",
    "session_file_name",
    "parse_file_name",
    "session_sort_key",
    "scan_sessions",
]

Category = Literal[
    "session",
    "provisioning",
    "health",
    "vpn",
    "circuit_breaker",
    "autoscaler",
    "streams",
    "requests",
    "engine_selection",
    "clients",
    "performance",
    "stress",
    "errors",
]

#: Every category, in file-creation order. Each session creates all of these files, empty, at its start.
#: ``requests``, ``engine_selection`` and ``clients`` are the embedded proxy's (the proxy inside ``aceorch serve``);
#: it also writes into ``provisioning``, ``streams`` and ``stress``, marked ``component: "proxy"``.
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)

Severity = Literal["info", "warning", "critical"]
SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "critical")

#: The categories of the standalone proxy's own sessions (``aceorch proxy``, in PROXY_DEBUG_LOG_DIR); the
#: embedded proxy writes the same categories of the orchestrator's session, its records marked
#: ``component: "proxy"``.
PROXY_CATEGORIES: Final[tuple[str, ...]] = (
    "session",
    "requests",
    "engine_selection",
    "provisioning",
    "streams",
    "clients",
    "stress",
    "errors",
)

#: ``event_type`` of the proxy's stress records, with their severities.
PROXY_STRESS_EVENT_TYPES: Final[dict[str, Severity]] = {
    "slow_request": "warning",
    "slow_engine_selection": "warning",
    "upstream_stall": "warning",
    "viewers_lagging": "warning",
}

#: ``YYYYMMDD_HHMMSS`` (UTC start second), with ``_2``, ``_3``… when two sessions would share an id.
SESSION_ID_RE: Final = re.compile(r"^\d{8}_\d{6}(?:_\d+)?$")
#: ``<session_id>_<category>.jsonl``; group 1 is the session id, group 2 the category.
FILE_NAME_RE: Final = re.compile(r"^(\d{8}_\d{6}(?:_\d+)?)_(" + "|".join(CATEGORIES) + r")\.jsonl$")
#: The same layout with any category name: a proxy's own files may have categories of their own.
ANY_FILE_NAME_RE: Final = re.compile(r"^(\d{8}_\d{6}(?:_\d+)?)_([a-z][a-z_]*)\.jsonl$")

#: The fields every record starts with, in this order (``request_id``/``trace_id`` follow when a request
#: caused it).
COMMON_FIELDS: Final = ("session_id", "timestamp", "elapsed_seconds", "seq")

#: ``operation`` values of the ``session`` category.
SESSION_OPERATIONS: Final = (
    "session_start",
    "debug_enabled",
    "debug_disabled",
    "runtime_selected",
    "session_end",
)

#: ``operation`` values of the ``provisioning`` category that the seed and the analysis rely on.
PROVISIONING_OPERATIONS: Final = (
    "start_acestream_begin",
    "start_acestream_success",
    "start_acestream_failed",
    "start_container_begin",
    "start_container_success",
    "start_container_failed",
    "stop_engine_begin",
    "stop_engine_success",
    "stop_engine_failed",
)

#: ``reason`` of ``start_acestream_failed`` / ``start_container_failed``.
START_FAILURE_REASONS: Final = (
    "vpn_disconnected",
    "circuit_breaker",
    "max_capacity",
    "port_pool_exhausted",
    "image_not_found",
    "rejected_input",
    "docker_error",
    "startup_timeout",
    "engine_exited",
)

#: ``reason`` of ``stop_engine_*``.
STOP_REASONS: Final = (
    "api_delete",
    "auto_delete",
    "idle",
    "scale_down",
    "unhealthy_replacement",
    "vpn_reconnect",
    "shutdown",
)

#: ``event_type`` of the stress records, with their severities.
STRESS_EVENT_TYPES: Final[dict[str, Severity]] = {
    "slow_provisioning": "warning",
    "vpn_disconnection": "critical",
    "vpn_recovered": "info",
    "vpn_engines_restarted": "info",
    "vpn_failover": "warning",
    "vpn_gluetun_restart": "warning",
    "circuit_breaker_opened": "critical",
    "circuit_breaker_reopened": "critical",
    "high_unhealthy_engines": "warning",
    "capacity_exhausted": "warning",
    "provisioning_failure_rate": "warning",
    "engine_replacement_storm": "warning",
    "event_loop_lag": "warning",
    "debug_log_backpressure": "warning",
}

#: A condition that clears writes ``<event_type>_resolved`` (severity ``info``) with ``duration_ms`` and
#: ``samples``.
RESOLVED_SUFFIX: Final = "_resolved"


class _Common(TypedDict):
    session_id: str | None
    timestamp: str
    elapsed_seconds: float
    seq: int


class CommonFields(_Common, total=False):
    """The start of every record. ``timestamp`` is always ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width)."""

    request_id: str
    trace_id: str


class SessionStartRecord(CommonFields, total=False):
    """``session_start``: the first record of a session, with the effective (masked) config."""

    operation: Literal["session_start"]
    version: str
    runtime: str
    config: dict[str, object]
    host: str
    pid: int
    log_dir: str
    enabled_by: str


class SessionEndRecord(CommonFields, total=False):
    """``session_end``: the last record of a session that was closed cleanly."""

    operation: Literal["session_end"]
    #: Records written per category (this record excluded).
    records: dict[str, int]
    dropped: int
    #: The session's uptime.
    duration_ms: float


class ProvisioningRecord(CommonFields, total=False):
    """A ``provisioning`` record: one step of starting or stopping an engine."""

    operation: str
    container_id: str | None
    container_name: str | None
    host_http_port: int | None
    labels: dict[str, str]
    image: str
    custom_env: bool
    duration_ms: float | None
    success: bool
    error: str | None
    reason: str | None


class StressRecord(CommonFields, total=False):
    """A ``stress`` record: a stress situation began (or, for ``slow_provisioning``, happened)."""

    event_type: str
    severity: Severity
    description: str
    # Extra fields, by event type.
    container_id: str | None
    operation: str
    duration_ms: float
    threshold_ms: float
    signal: str | None
    outage_ms: float | None
    engines_restarted: int | None
    operation_type: str
    failure_count: int
    threshold: int
    unhealthy_count: int
    total: int
    limit: int | None
    running: int | None
    failed: int
    attempted: int
    window_s: int
    count: int
    lag_ms: float
    dropped: int


class StressResolvedRecord(CommonFields, total=False):
    """``<event_type>_resolved``: a stress situation cleared."""

    event_type: str  # "<event_type>_resolved"
    severity: Severity  # always "info"
    description: str
    #: How long the episode lasted, from the first record to the clearing sample.
    duration_ms: float
    #: How many samples (calls that saw the condition hold) were folded into the episode.
    samples: int
    started_at: str


class ErrorRecord(CommonFields, total=False):
    """An ``errors`` record: an exception a component caught and recorded."""

    component: str
    operation: str
    error_type: str
    error_message: str
    traceback: str | None


def session_file_name(session_id: str, category: str) -> str:
    """``20251018_144430_provisioning.jsonl``."""
    return f"{session_id}_{category}.jsonl"


def parse_file_name(name: str, *, any_category: bool = False) -> tuple[str, str] | None:
    """``(session_id, category)`` of an aceorch debug file name, or None for any other file.

    ``any_category`` also accepts category names this version does not write (``[a-z][a-z_]*``).
    """
    m = (ANY_FILE_NAME_RE if any_category else FILE_NAME_RE).match(name)
    return (m.group(1), m.group(2)) if m else None


def session_sort_key(session_id: str) -> tuple[str, int]:
    """Orders sessions by start time, then by collision suffix (``_2`` before ``_10``)."""
    base, suffix = session_id[:15], session_id[16:]
    return base, int(suffix) if suffix.isdigit() else 1


@dataclass
class SessionFiles:
    """The files of one session found in a folder."""

    session_id: str
    files: dict[str, Path] = field(default_factory=dict)  # category -> path

    @property
    def paths(self) -> list[Path]:
        """The files of the categories this version writes, in :data:`CATEGORIES` order."""
        return [self.files[c] for c in CATEGORIES if c in self.files]

    @property
    def size(self) -> int:
        """Bytes on disk of every file of the session (files that vanished count as empty)."""
        total = 0
        for path in self.files.values():
            try:
                total += path.stat().st_size
            except OSError:
                pass
        return total

    def path(self, category: str) -> Path | None:
        """The file of ``category``, or None when the session has none."""
        return self.files.get(category)


def scan_sessions(
    directory: str | Path, *, any_category: bool = False, files_only: bool = False
) -> list[SessionFiles]:
    """Every aceorch session in ``directory``, oldest first. Other files are ignored; a missing folder is
    empty.

    ``any_category`` also takes files of categories this version does not write; ``files_only`` skips
    entries that are not regular files (a directory or a dangling link with a session file's name).
    """
    sessions: dict[str, SessionFiles] = {}
    try:
        entries = list(Path(directory).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    for path in entries:
        parsed = parse_file_name(path.name, any_category=any_category)
        if parsed is None or (files_only and not path.is_file()):
            continue
        sid, category = parsed
        sessions.setdefault(sid, SessionFiles(sid)).files[category] = path
    return [sessions[k] for k in sorted(sessions, key=session_sort_key)]
