"""``python -m aceorch.config``: print the generated ``.env.example``, write it, or check that a file is current."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aceorch.config.example import render_env_example


def main(argv: list[str] | None = None) -> int:
    """Print the generated ``.env.example``; ``--write PATH`` writes it, ``--check PATH`` exits 1 when PATH differs."""
    parser = argparse.ArgumentParser(prog="python -m aceorch.config", description=__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", metavar="PATH", type=Path, help="write the generated file to PATH")
    action.add_argument("--check", metavar="PATH", type=Path, help="exit 1 when PATH is not the generated file")
    args = parser.parse_args(argv)
    text = render_env_example()
    if args.write is not None:
        args.write.write_text(text, encoding="utf-8")
        return 0
    if args.check is not None:
        current = args.check.read_text(encoding="utf-8") if args.check.is_file() else ""
        if current != text:
            sys.stderr.write(f"{args.check} is out of date: run python -m aceorch.config --write {args.check}\n")
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
