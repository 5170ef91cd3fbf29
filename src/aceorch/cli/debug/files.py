"""``aceorch debug archive`` and ``prune``: packing and deleting whole sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from aceorch.analysis import archive
from aceorch.analysis.fields import parse_timestamp
from aceorch.analysis.sessions import AnalysisError, Session, discover_sessions, is_open, select_sessions
from aceorch.cli.debug.common import (
    DEFAULT_DIR,
    AllOpt,
    DirOpt,
    JsonOpt,
    SessionOpt,
    console,
    fail,
    human_size,
    print_json,
)

__all__ = ["archive_cmd", "prune_cmd"]


def archive_cmd(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="tar.gz to write.")] = None,
    include_current: Annotated[
        bool, typer.Option("--include-current", help="Also archive the newest (possibly live) session.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
    log_dir: DirOpt = DEFAULT_DIR,
    session: SessionOpt = None,
    all_sessions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """tar.gz of sessions (default: all but a newest one still being written, unless it is the only one)."""
    try:
        found = discover_sessions(log_dir)
        skipped: list[dict[str, str]] = []
        if session is not None:
            chosen = select_sessions(found, session_id=session, all_sessions=False)
        elif all_sessions or include_current or len(found) <= 1 or not is_open(found[-1]):
            # The current session is the one under investigation when it is all there is, or when asked for.
            chosen = list(found)
        else:
            chosen = list(found[:-1])
            skipped.append({"session_id": found[-1].session_id,
                            "reason": "still open (being written); pass --include-current to take it"})
        if not chosen:
            raise AnalysisError("no debug sessions to archive")
        target = output or Path(archive.default_archive_name(chosen))
        result = archive.archive_sessions(log_dir, chosen, target, overwrite=force)
    except AnalysisError as exc:
        raise fail(str(exc)) from exc
    taken = {s.session_id for s in chosen}
    if session is not None:
        skipped.extend({"session_id": s.session_id, "reason": "not chosen (--session)"}
                       for s in found if s.session_id not in taken)
    result["skipped"] = skipped
    if as_json:
        print_json(result)
    else:
        out = console()
        out.print(
            f"archived {len(result['sessions'])} session(s), {len(result['members'])} file(s) "
            f"({human_size(result['input_bytes'])}) to {result['output']} ({human_size(result['archive_bytes'])})"
        )
        for sid in result["sessions"]:
            out.print(f"  took    {sid}" + (" (open: still being written)" if is_open_id(found, sid) else ""))
        for entry in skipped:
            out.print(f"  skipped {entry['session_id']}: {entry['reason']}")


def is_open_id(sessions: list[Session], session_id: str) -> bool:
    """Whether the session of that id is still open."""
    return any(s.session_id == session_id and is_open(s) for s in sessions)


def prune_cmd(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age: 7d, 12h, 30m (bare number = days).")
    ] = "7d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
    include_current: Annotated[
        bool, typer.Option("--include-current", help="The newest session may be deleted too.")
    ] = False,
    log_dir: DirOpt = DEFAULT_DIR,
    as_json: JsonOpt = False,
    now: Annotated[str | None, typer.Option("--now", hidden=True, help="Reference time (tests).")] = None,
) -> None:
    """Delete sessions older than an age, by the date in their id (never the newest without asking)."""
    try:
        age = archive.parse_age(older_than)
        found = discover_sessions(log_dir)
        reference = parse_timestamp(now) if now else datetime.now(UTC)
        plan = archive.prune_plan(
            found, older_than=age, now=reference, include_current=include_current
        )
        result = archive.prune_sessions(plan, dry_run=dry_run)
    except AnalysisError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        print_json(result)
        return
    out = console()
    verb = "would delete" if dry_run else "deleted"
    for s in result["sessions"]:
        out.print(f"{verb} {s['session_id']} ({len(s['files'])} file(s), {human_size(s['bytes'])})")
    out.print(f"{verb} {len(result['sessions'])} session(s), {human_size(result['bytes'])}")

