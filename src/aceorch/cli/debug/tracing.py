"""``aceorch debug trace <request-id>``: one viewer request's records from both sides, as a timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aceorch.analysis.reader import Reader
from aceorch.analysis.trace import describe, trace
from aceorch.cli.debug.common import DEFAULT_DIR, DirOpt, JsonOpt, ProxyDirOpt, console, fail, print_json, proxy_dir_for

__all__ = ["trace_cmd"]


def trace_cmd(
    request_id: Annotated[str, typer.Argument(help="The request id (X-Request-ID) or trace id to follow.")],
    log_dir: DirOpt = DEFAULT_DIR,
    proxy_dir: ProxyDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every record of one request across the orchestrator's and the proxy's folders, in time order."""
    folders: list[tuple[str, Path]] = [("orchestrator", log_dir)]
    found = proxy_dir_for(log_dir, proxy_dir)
    if found.resolve() != log_dir.resolve():
        folders.append(("proxy", found))
    rows = trace(Reader(), folders, request_id)
    if as_json:
        print_json([{k: v for k, v in r.items()} for r in rows])
        return
    if not rows:
        raise fail(f"no record carries request id {request_id!r}")
    out = console()
    out.print(f"Request {request_id}: {len(rows)} records", markup=False)
    for r in rows:
        side = "embedded proxy" if r["record"].get("component") == "proxy" else r["side"]
        out.print(f"{r['time']}  {side:<14} {r['category']:<17} {r['operation']:<24} {describe(r)}", markup=False)
