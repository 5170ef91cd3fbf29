"""Debug mode, the writing side: JSONL records per category, stress detectors and session bundles.

* ``records``: the record schema and file-name rules, and the one place session files are found;
* ``writer``: :class:`~aceorch.debuglog.writer.DebugLog`, the writer: sessions on and off, the writer
  thread, status; built on ``recording`` (the caller's side: masking with ``masking``, ``seq``, the queue),
  ``session`` (one session's files and counters) and ``retention``;
* ``stress``: :class:`~aceorch.debuglog.stress.StressMonitor`, the stress detectors;
* ``bundle``: the ``tar.gz`` of one session served by the API.

Reading and analysing the files is :mod:`aceorch.analysis`, which imports ``records`` only. Import the
submodule you need; this package imports nothing, so that reading the schema never loads the settings.
"""
