"""The ``aceorch`` command: ``serve``, ``db upgrade|current|history``, ``engines prune``, ``debug …`` (log
analysis) and ``sim engine|gluetun``."""

from __future__ import annotations

import sys
from typing import Any

import typer

__all__ = ["app", "main"]


def _build() -> typer.Typer:
    """The whole command tree. Built on first use, so ``aceorch debug …`` loads neither settings nor the store."""
    from aceorch.cli.db import app as db_app
    from aceorch.cli.debug import app as debug_app
    from aceorch.cli.engines import app as engines_app
    from aceorch.cli.proxy import proxy
    from aceorch.cli.serve import serve

    root = typer.Typer(help="aceorch: an orchestrator for AceStream engines.", no_args_is_help=True,
                       add_completion=False)
    root.command()(serve)
    root.command()(proxy)
    root.add_typer(db_app, name="db", help="The store's schema migrations: `aceorch db upgrade|current|history`.")
    root.add_typer(debug_app, name="debug", help="Analyse debug-mode session logs.")
    root.add_typer(engines_app, name="engines", help="Managed engine containers: `aceorch engines prune`.")
    root.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                   "help_option_names": []})(sim)
    return root


_APP: list[typer.Typer] = []


def __getattr__(name: str) -> Any:
    """``aceorch.cli.app``: the command tree, built on first access."""
    if name == "app":
        if not _APP:
            _APP.append(_build())
        return _APP[0]
    raise AttributeError(name)


def sim(ctx: typer.Context) -> None:
    """Run a simulator: ``aceorch sim engine|gluetun [options]`` (see ``aceorch sim engine --help``)."""
    from aceorch.sim.__main__ import main as sim_main

    raise typer.Exit(sim_main(list(ctx.args)))


def main() -> None:
    """Run the ``aceorch`` command line (the console script's entry point)."""
    if len(sys.argv) > 1 and sys.argv[1] == "debug":
        # The log analysis alone: starts in a fraction of the time the whole tree takes to import.
        from aceorch.cli.debug import app as debug_app

        debug_app(prog_name="aceorch debug", args=sys.argv[2:])
        return
    __getattr__("app")(prog_name="aceorch")
