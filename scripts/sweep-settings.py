#!/usr/bin/env python3
"""Rewrite flat settings reads (``settings.min_replicas``) to the grouped form (``settings.pool.min_replicas``).

Usage, from the repository root with the project's venv::

    .venv/bin/python scripts/sweep-settings.py [--dry-run | --check] [--no-s] [--receiver NAME ...] [PATH ...]

PATHs default to ``src tests bench``; ``src/aceorch/config/`` itself is never touched. A read is rewritten when
its receiver is ``settings`` or ends in ``.settings`` / ``._settings`` (``self.settings``, ``service.settings``,
``app.state.settings``), is a bare ``s``, or is one of the ``--receiver`` names. ``--no-s`` leaves bare ``s``
alone. Every change is printed as ``path:line: old -> new``; review them (a bare ``s`` that is not a Settings
would be rewritten too). ``--dry-run`` prints without writing; ``--check`` prints and exits 1 when anything
would change, so it can confirm the sweep is complete before the flat-access shim goes.

``settings.runtime`` is special: the name is both the ``RUNTIME`` setting and the runtime group. It becomes
``settings.runtime.kind`` unless a runtime-group attribute follows (``settings.runtime.engine_command``).
Flat keyword arguments (``Settings(min_replicas=0)``) are not reads and stay as they are.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from aceorch.config import SETTING_GROUPS, Settings, flat_fields

SKIP = Path("src/aceorch/config")


def group_attributes() -> dict[str, set[str]]:
    """For each group: its field names and public properties, what may follow ``settings.<group>.``."""
    found: dict[str, set[str]] = {}
    for group, info in Settings.model_fields.items():
        model = info.annotation
        assert isinstance(model, type)
        names = {n for n in dir(model) if not n.startswith("_")} | set(getattr(model, "model_fields", {}))
        found[group] = names - {"value"}  # ``runtime.value`` is the transitional shim: rewrite it
    return found


def pattern(receivers: list[str], bare_s: bool) -> re.Pattern[str]:
    """The flat reads: a receiver, a dot, a flat setting name."""
    alternatives = [r"(?:[A-Za-z_]\w*\.)*_?settings"] + [re.escape(r) for r in receivers]
    if bare_s:
        alternatives.append("s")
    names = "|".join(sorted(SETTING_GROUPS, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])(?P<recv>{'|'.join(alternatives)})\.(?P<name>{names})\b(?P<after>\.\w+)?")


def rewrite_line(line: str, rx: re.Pattern[str], attrs: dict[str, set[str]]) -> str:
    """``line`` with every flat read in its grouped form."""
    fields = flat_fields()

    def grouped(m: re.Match[str]) -> str:
        name, after = m.group("name"), m.group("after") or ""
        group, attr, _ = fields[name]
        if name in attrs and after[1:] in attrs[name]:
            return m.group(0)  # already the group: ``settings.runtime.engine_command``
        return f"{m.group('recv')}.{group}.{attr}{after}"

    return rx.sub(grouped, line)


def main(argv: list[str] | None = None) -> int:
    """Sweep the given paths; print each change."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("src"), Path("tests"), Path("bench")])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    mode.add_argument("--check", action="store_true", help="print the changes, exit 1 if there are any")
    parser.add_argument("--no-s", action="store_true", help="leave reads through a bare `s` alone")
    parser.add_argument("--receiver", action="append", default=[], help="another receiver name, e.g. cfg")
    args = parser.parse_args(argv)
    rx = pattern(args.receiver, bare_s=not args.no_s)
    attrs = group_attributes()
    files = [f for p in args.paths for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]
    changed = 0
    for path in files:
        if path.resolve().is_relative_to(SKIP.resolve()):
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        out = []
        for number, line in enumerate(lines, 1):
            new = rewrite_line(line, rx, attrs)
            if new != line:
                changed += 1
                sys.stdout.write(f"{path}:{number}: {line.strip()}\n{' ' * len(str(path))}  -> {new.strip()}\n")
            out.append(new)
        if not (args.dry_run or args.check) and out != lines:
            path.write_text("".join(out), encoding="utf-8")
    sys.stdout.write(f"{changed} line(s) {'to change' if args.dry_run or args.check else 'changed'}\n")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
