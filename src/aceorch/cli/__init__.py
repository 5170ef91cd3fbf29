"""The ``aceorch`` command: ``serve``, ``db upgrade|current|history``, ``engines prune``, ``debug …`` (log
analysis) and ``sim engine|gluetun``."""

from __future__ import annotations

import typer

from aceorch.cli.db import app as db_app
from aceorch.cli.debug import app as debug_app
from aceorch.cli.engines import app as engines_app
from aceorch.cli.serve import serve

__all__ = ["app", "main"]

app = typer.Typer(help="aceorch: an orchestrator for AceStream engines.", no_args_is_help=True,
                  add_completion=False)
app.command()(serve)
app.add_typer(db_app, name="db", help="The store's schema migrations: `aceorch db upgrade|current|history`.")
app.add_typer(debug_app, name="debug", help="Analyse debug-mode session logs.")
app.add_typer(engines_app, name="engines", help="Managed engine containers: `aceorch engines prune`.")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                               "help_option_names": []})
def sim(ctx: typer.Context) -> None:
    """Run a simulator: ``aceorch sim engine|gluetun [options]`` (see ``aceorch sim engine --help``)."""
    from aceorch.sim.__main__ import main as sim_main

    raise typer.Exit(sim_main(list(ctx.args)))


def main() -> None:
    """Run the ``aceorch`` command line (the console script's entry point)."""
    app(prog_name="aceorch")
