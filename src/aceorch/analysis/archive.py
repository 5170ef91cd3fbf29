"""``aceorch debug archive`` and ``prune``: the debug-mode guide's ``tar`` and ``find -mtime +7 -delete``, done safely.

* Sessions are chosen by the date in their id, not by file mtime (a copied folder keeps its meaning).
* Only files that follow the naming contract are touched; anything else in the folder is left alone.
* The newest session may be live, so it is never pruned, and archived only when asked for.
* The archive is written to a temporary file next to its destination (mode 0600, like the logs), then
  renamed into place; an existing file is not overwritten unless asked. A live file is archived up to the
  size it had when it was added (tarfile copies exactly ``st_size`` bytes), and symlinks are skipped.
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aceorch.analysis.sessions import AnalysisError, Session, parse_session_time

__all__ = ["parse_age", "archive_sessions", "prune_plan", "prune_sessions", "default_archive_name"]

_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "": 86400.0}


def parse_age(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w``; a bare number is days (like ``find -mtime``)."""
    match = _AGE_RE.match(text)
    if match is None:
        raise AnalysisError(f"cannot read age {text!r}: use e.g. 7d, 12h, 30m")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2].lower()])


def default_archive_name(sessions: Sequence[Session]) -> str:
    """``investigation_<YYYYMMDD>.tar.gz`` (the debug-mode guide's name), or a date range when sessions span days."""
    days = sorted({s.session_id[:8] for s in sessions})
    if not days:
        return "investigation.tar.gz"
    if len(days) == 1:
        return f"investigation_{days[0]}.tar.gz"
    return f"investigation_{days[0]}-{days[-1]}.tar.gz"


def archive_sessions(
    log_dir: Path, sessions: Sequence[Session], output: Path, *, overwrite: bool = False
) -> dict[str, Any]:
    """Pack the sessions' files into ``output`` (tar.gz, members ``<log dir name>/<file>``)."""
    if not sessions:
        raise AnalysisError("no session to archive")
    if output.exists() and not overwrite:
        raise AnalysisError(f"{output} exists; pass --force to overwrite it")
    output.parent.mkdir(parents=True, exist_ok=True)
    prefix = log_dir.resolve().name or "debug_logs"
    members: list[str] = []
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=".archive-", suffix=".tar.gz", dir=output.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for session in sessions:
                for _category, path in sorted(session.files.items(), key=lambda kv: kv[1].name):
                    if path.is_symlink() or not path.is_file():
                        continue
                    arcname = f"{prefix}/{path.name}"
                    tar.add(path, arcname=arcname, recursive=False)
                    members.append(arcname)
                    size += path.stat().st_size
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {
        "output": str(output),
        "sessions": [s.session_id for s in sessions],
        "members": members,
        "input_bytes": size,
        "archive_bytes": output.stat().st_size,
    }


def prune_plan(
    sessions: Sequence[Session], *, older_than: timedelta, now: datetime, include_current: bool = False
) -> list[Session]:
    """Sessions that started before ``now - older_than``; the newest one only with ``include_current``."""
    cutoff = now - older_than
    candidates = list(sessions) if include_current else list(sessions[:-1])
    return [s for s in candidates if parse_session_time(s.session_id) < cutoff]


def prune_sessions(sessions: Sequence[Session], *, dry_run: bool) -> dict[str, Any]:
    """Delete the sessions' files (or only say what would go, with ``dry_run``)."""
    deleted: list[dict[str, Any]] = []
    freed = 0
    for session in sessions:
        files: list[str] = []
        size = 0
        for path in session.files.values():
            try:
                size += path.stat().st_size
            except OSError:
                continue
            if not dry_run:
                path.unlink(missing_ok=True)
            files.append(path.name)
        freed += size
        deleted.append({"session_id": session.session_id, "files": sorted(files), "bytes": size})
    return {"dry_run": dry_run, "sessions": deleted, "bytes": freed}
