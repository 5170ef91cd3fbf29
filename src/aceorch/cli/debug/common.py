"""What every ``aceorch debug`` command shares: its options, session choice, progress bar and output helpers.

Every command reads a log folder (``--dir``, default ``$DEBUG_LOG_DIR`` or ``./debug_logs``), one session
(``--session ID``, default the latest) or ``--all`` of them, and prints rich tables, or JSON with ``--json``.
Inputs over :data:`PROGRESS_THRESHOLD_BYTES` get a progress bar on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from aceorch.analysis.reader import Reader
from aceorch.analysis.sessions import AnalysisError, Session, discover_sessions, select_sessions, total_size

__all__ = [
    "PROGRESS_THRESHOLD_BYTES",
    "DEFAULT_DIR",
    "DirOpt",
    "ProxyDirOpt",
    "PROXY_DIR_CANDIDATES",
    "proxy_dir_for",
    "SessionOpt",
    "AllOpt",
    "JsonOpt",
    "console",
    "err_console",
    "fail",
    "pick_sessions",
    "open_reader",
    "print_json",
    "json_stream",
    "fmt_ms",
    "fmt_pct",
    "human_size",
]

#: Inputs larger than this get a progress bar on stderr.
PROGRESS_THRESHOLD_BYTES = 50 * 1024 * 1024

DirOpt = Annotated[
    Path,
    typer.Option("--dir", envvar="DEBUG_LOG_DIR", help="Debug log folder.", show_default=True),
]
SessionOpt = Annotated[str | None, typer.Option("--session", help="Session id (default: the latest).")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every session in the folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

DEFAULT_DIR = Path("./debug_logs")

ProxyDirOpt = Annotated[
    Path | None,
    typer.Option("--proxy-dir", help="The standalone proxy's debug log folder (default: ../proxy/debug_logs or "
                 "proxy_debug_logs beside --dir's folder if one exists, else --dir itself, where the embedded "
                 "proxy writes)."),
]

#: Where a standalone proxy's folder is looked for, relative to the folder that holds ``--dir``: the debug-mode
#: guide's two layouts (``debug_logs`` + ``../proxy/debug_logs``, and ``proxy_debug_logs`` beside it).
PROXY_DIR_CANDIDATES = (Path("..") / "proxy" / "debug_logs", Path("proxy_debug_logs"))


def proxy_dir_for(log_dir: Path, given: Path | None) -> Path:
    """The proxy's folder: ``given`` (which must exist), else the first of :data:`PROXY_DIR_CANDIDATES` that
    exists beside ``log_dir``, else ``log_dir`` itself (the embedded proxy's records are in the orchestrator's)."""
    if given is not None:
        if not given.is_dir():
            raise fail(f"proxy log folder not found: {given}")
        return given
    base = log_dir.parent
    for candidate in PROXY_DIR_CANDIDATES:
        path = Path(os.path.normpath(base / candidate))
        if path.is_dir() and path.resolve() != log_dir.resolve():
            return path
    return log_dir


def console() -> Console:
    """The console for results (160 columns wide when stdout is not a terminal)."""
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160, highlight=False)


def err_console() -> Console:
    """The console for errors, warnings and the progress bar (stderr)."""
    return Console(stderr=True, highlight=False)


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned exit (status 1)."""
    err_console().print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def pick_sessions(log_dir: Path, session: str | None, all_sessions: bool) -> list[Session]:
    """The sessions ``--session``/``--all`` choose in ``log_dir``; exits with an error when there are none."""
    try:
        found = discover_sessions(log_dir)
        return select_sessions(found, session_id=session, all_sessions=all_sessions)
    except AnalysisError as exc:
        raise fail(str(exc)) from exc


@contextlib.contextmanager
def open_reader(
    sessions: Sequence[Session], categories: Iterable[str] | None = None, passes: int = 1
) -> Iterator[Reader]:
    """A reader with a progress bar when the input is large (``passes`` = how often files are read)."""
    total = total_size(sessions, categories) * passes
    if total < PROGRESS_THRESHOLD_BYTES:
        yield Reader()
        return
    with Progress(
        TextColumn("reading logs"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err_console(),
        transient=True,
    ) as progress:
        task = progress.add_task("read", total=total)

        def advance(n: int) -> None:
            progress.advance(task, n)

        yield Reader(progress=advance)


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def json_stream(items: Iterable[Any]) -> None:
    """A JSON array written item by item, so memory does not grow with the output."""
    write = sys.stdout.write
    write("[")
    first = True
    for item in items:
        write("\n  " if first else ",\n  ")
        write(json.dumps(item, ensure_ascii=False))
        first = False
    write("\n]\n" if not first else "]\n")
    sys.stdout.flush()


def fmt_ms(value: float | None, digits: int = 2) -> str:
    """A duration in ms with thousands separators, or ``–`` when unknown."""
    return "–" if value is None else f"{value:,.{digits}f}"


def fmt_pct(value: float | None) -> str:
    """A ratio as a percentage with one decimal, or ``–`` when unknown."""
    return "–" if value is None else f"{value * 100:.1f}%"


def human_size(n: int) -> str:
    """A byte count in B, KB, MB or GB."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
