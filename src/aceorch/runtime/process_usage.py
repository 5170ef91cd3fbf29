"""The process backend's resource use and hygiene on the host's own file system and ``/proc`` (Linux).

:func:`read_proc_usage` reads a process's CPU time (``/proc/<pid>/stat`` utime + stime) and resident memory
(``/proc/<pid>/statm``); :func:`cpu_percent_between` turns two readings into a percentage as ``docker stats``
shows it (100 = one CPU busy). :func:`clear_dir` empties a directory in place. All of them block: call them
off the event loop.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

__all__ = ["ProcUsage", "read_proc_usage", "cpu_percent_between", "clear_dir"]


@dataclass(frozen=True)
class ProcUsage:
    """One reading of a process: CPU seconds used so far, resident bytes, and the monotonic time of reading."""

    cpu_s: float
    rss_bytes: int
    at: float


def read_proc_usage(pid: int, now: float) -> ProcUsage | None:
    """The process's CPU time and resident memory from ``/proc``; None where ``/proc`` cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            statm = f.read().split()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: the fields after it start behind its closing parenthesis.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of the whole line
        rss_pages = int(statm[1])
    except (IndexError, ValueError):
        return None
    hertz = os.sysconf("SC_CLK_TCK")
    return ProcUsage(cpu_s=ticks / hertz, rss_bytes=rss_pages * os.sysconf("SC_PAGE_SIZE"), at=now)


def cpu_percent_between(before: ProcUsage, after: ProcUsage) -> float | None:
    """CPU use between two readings of one process, in percent of one CPU; None without elapsed time."""
    elapsed = after.at - before.at
    if elapsed <= 0 or after.cpu_s < before.cpu_s:
        return None
    return (after.cpu_s - before.cpu_s) / elapsed * 100.0


def clear_dir(path: str) -> None:
    """Delete everything inside ``path``, keeping the directory; a missing directory is nothing to clear."""
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=False)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
