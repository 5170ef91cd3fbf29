"""Sessions of a debug log folder: finding them (through :func:`records.scan_sessions`) and choosing some.

A session is :class:`~aceorch.debuglog.records.SessionFiles`: its id and the files of its categories. The
folder is scanned by the schema module, the one place session files are recognised; here a missing folder
is an error the user can fix, and files of categories this version does not write are kept (a proxy's own
logs use the same layout).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from aceorch.debuglog.records import SessionFiles, scan_sessions

__all__ = [
    "AnalysisError",
    "Session",
    "discover_sessions",
    "select_sessions",
    "parse_session_time",
    "total_size",
    "has_records",
    "latest_session",
    "is_open",
]

#: One debug session: its id and its category files (only the ones that exist).
Session = SessionFiles


class AnalysisError(Exception):
    """A problem the user can fix (no such folder or session, bad argument); the CLI prints it and exits 1."""


def parse_session_time(session_id: str) -> datetime:
    """The UTC start time encoded in a session id (``YYYYMMDD_HHMMSS`` with an optional ``_N``)."""
    return datetime.strptime(session_id[:15], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)


def discover_sessions(log_dir: Path) -> list[Session]:
    """Every session in ``log_dir``, oldest first. Files not named by the contract are ignored."""
    if not log_dir.is_dir():
        raise AnalysisError(f"debug log folder not found: {log_dir}")
    return scan_sessions(log_dir, any_category=True, files_only=True)


def select_sessions(
    sessions: Sequence[Session], *, session_id: str | None, all_sessions: bool
) -> list[Session]:
    """``--session ID`` (or a unique prefix of one), ``--all``, or by default the latest session with records."""
    if not sessions:
        raise AnalysisError("no debug sessions found")
    if all_sessions:
        return list(sessions)
    if session_id is None:
        return [latest_session(sessions)]
    exact = [s for s in sessions if s.session_id == session_id]
    if exact:
        return exact
    prefixed = [s for s in sessions if s.session_id.startswith(session_id)]
    if len(prefixed) == 1:
        return prefixed
    if prefixed:
        raise AnalysisError(
            f"session {session_id!r} is ambiguous: " + ", ".join(s.session_id for s in prefixed)
        )
    raise AnalysisError(f"no such session: {session_id}")


def has_records(session: Session) -> bool:
    """Whether the session recorded anything besides its own start and end (a file other than ``session``)."""
    for category, path in session.files.items():
        if category == "session":
            continue
        try:
            if path.stat().st_size > 0:
                return True
        except OSError:
            continue
    return False


def latest_session(sessions: Sequence[Session]) -> Session:
    """The newest session that recorded something: an empty or zero-second one (a start that was stopped
    at once, a ``--help`` run with debug mode on) is never "the latest" while an earlier one has records."""
    for session in reversed(sessions):
        if has_records(session):
            return session
    return sessions[-1]


def is_open(session: Session) -> bool:
    """Whether the session has no ``session_end`` record yet (it may still be written)."""
    path = session.path("session")
    if path is None:
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - (1 << 16)))
            return b"session_end" not in handle.read()
    except OSError:
        return True


def total_size(sessions: Sequence[Session], categories: Iterable[str] | None = None) -> int:
    """Bytes that a command will read (for deciding whether to show a progress bar)."""
    wanted = set(categories) if categories is not None else None
    total = 0
    for session in sessions:
        for category, path in session.files.items():
            if wanted is None or category in wanted:
                try:
                    total += path.stat().st_size
                except OSError:
                    pass
    return total
