"""Offline reading and analysis of debug-mode session files (``aceorch debug …``).

Pure functions over the JSONL files the writer in :mod:`aceorch.debuglog` produces, depending on the
standard library and on :mod:`aceorch.debuglog.records` (the record schema) only, so a copied log folder can
be analysed without the service. The modules:

* ``sessions``: finding sessions in a folder and choosing among them;
* ``fields``: coercing record fields (numbers, strings, timestamps) and percentiles;
* ``reader``: streaming records line by line, merged across files by time;
* ``thresholds``: the settings a session ran with (from its ``session_start`` record);
* ``signals``: VPN outages and health sweeps;
* ``report``, ``views`` (sessions, slow, stress, timeline), ``export`` (CSV), ``evidence`` and ``diagnose``,
  ``correlate``, ``html``, ``archive`` (archive and prune): one per command.

Nothing here prints; :mod:`aceorch.cli.debug` renders the results.
"""
