"""``aceorch debug trace <request-id>``: one viewer request's records from both sides, as a timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aceorch.analysis.reader import Reader
from aceorch.analysis.trace import describe, trace
from aceorch.cli.debug.common import DEFAULT_DIR, DirOpt, JsonOpt, console, fail, print_json

__all__ = ["trace_cmd"]


def trace_cmd(
    request_id: Annotated[str, typer.Argument(help="The request id (X-Request-ID) or trace id to follow.")],
    log_dir: DirOpt = DEFAULT_DIR,
    proxy_dir: Annotated[
        Path | None, typer.Option("--proxy-dir", help="The standalone proxy's debug log folder, if any.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every record of one request across the orchestrator's and the proxy's folders, in time order."""
    folders = [("orchestrator", log_dir)]
    if proxy_dir is not None:
        if not proxy_dir.is_dir():
            raise fail(f"proxy log folder not found: {proxy_dir}")
        folders.append(("proxy", proxy_dir))
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
