"""Retention: whole sessions older than ``DEBUG_LOG_RETENTION_DAYS`` go, then the oldest until the folder is
under ``DEBUG_LOG_MAX_MB``. Protected sessions (the current one, ids being created) are never deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from aceorch.debuglog import records
from aceorch.debuglog.session import reason

__all__ = ["prune", "delete_session"]

logger = logging.getLogger("aceorch.debuglog")


def prune(
    sessions: Sequence[records.SessionFiles],
    *,
    protected: set[str],
    retention_days: int,
    cap_bytes: int,
    clock: Callable[[], datetime],
) -> list[str]:
    """Delete expired sessions, then the oldest while over ``cap_bytes``; returns the deleted ids, oldest first.

    Age is the newest file's mtime; ``retention_days`` 0 keeps sessions of any age.
    """
    sizes: dict[str, int] = {}
    newest: dict[str, float] = {}
    for sf in sessions:
        size, mtime = 0, 0.0
        for path in sf.paths:
            try:
                st = path.stat()
            except OSError:
                continue
            size += st.st_size
            mtime = max(mtime, st.st_mtime)
        sizes[sf.session_id], newest[sf.session_id] = size, mtime
    deleted: list[str] = []
    keep: list[records.SessionFiles] = []
    cutoff = (clock() - timedelta(days=retention_days)).timestamp() if retention_days > 0 else None
    for sf in sessions:
        if cutoff is not None and sf.session_id not in protected and newest[sf.session_id] < cutoff:
            delete_session(sf)
            deleted.append(sf.session_id)
        else:
            keep.append(sf)
    total = sum(sizes[sf.session_id] for sf in keep)
    for sf in keep:
        if total <= cap_bytes:
            break
        if sf.session_id in protected:
            continue
        delete_session(sf)
        deleted.append(sf.session_id)
        total -= sizes[sf.session_id]
    return deleted


def delete_session(sf: records.SessionFiles) -> None:
    """Delete the session's files; a file that cannot be deleted is logged and left."""
    for path in sf.paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("debug log retention could not delete %s: %s", path, reason(exc))
