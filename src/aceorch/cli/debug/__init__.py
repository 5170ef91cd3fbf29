"""``aceorch debug …``: offline analysis of debug-mode logs, one Typer sub-app.

The work is done by the pure functions of :mod:`aceorch.analysis`; the command modules here only parse
options, draw a progress bar on large inputs and render results. Commands whose output can be as long as
the log (``slow``, ``timeline``, ``export-csv``) stream it instead of building it. Commands are registered
here, in the order ``--help`` lists them.
"""

from __future__ import annotations

import typer

from aceorch.cli.debug import events, files, findings, query, reports, tracing

__all__ = ["app"]

app = typer.Typer(
    help="Analyse debug-mode logs offline: reports, slow operations, stress, timeline, diagnosis.",
    no_args_is_help=True,
    add_completion=False,
)

app.command("sessions")(reports.sessions_cmd)
app.command("report")(reports.report_cmd)
app.command("slow")(events.slow_cmd)
app.command("stress")(events.stress_cmd)
app.command("timeline")(events.timeline_cmd)
app.command("export-csv")(events.export_csv_cmd)
app.command("export")(query.export_cmd)
app.command("sql")(query.sql_cmd)
app.command("correlate")(findings.correlate_cmd)
app.command("diagnose")(findings.diagnose_cmd)
app.command("trace")(tracing.trace_cmd)
app.command("html-report")(findings.html_report_cmd)
app.command("archive")(files.archive_cmd)
app.command("prune")(files.prune_cmd)
