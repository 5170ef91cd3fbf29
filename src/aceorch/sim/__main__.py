"""``python -m aceorch.sim engine|gluetun [flags]``: run one of the simulators.

:func:`main` takes the raw arguments and returns the exit status instead of exiting, so the ``aceorch sim``
CLI can delegate to it. Configuration comes from the environment; flags override it. A bad value gives
status 2 and one stderr line naming the variable; SIGTERM and SIGINT stop the simulator with status 0.
"""

from __future__ import annotations

import argparse
import os
import sys

from aceorch.sim import engine, gluetun

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m aceorch.sim`` argument parser, with one subcommand per simulator."""
    parser = argparse.ArgumentParser(
        prog="python -m aceorch.sim",
        description="AceStream engine and Gluetun simulators (standard library only).",
    )
    commands = parser.add_subparsers(dest="command", metavar="{engine,gluetun}", required=True)
    engine.add_arguments(
        commands.add_parser(
            "engine",
            help="simulate an AceStream engine (env: CONF, HTTP_PORT, SIM_*)",
            description="Simulate an AceStream engine's HTTP API. Flags override the environment.",
        )
    )
    gluetun.add_arguments(
        commands.add_parser(
            "gluetun",
            help="simulate Gluetun's control server (env: SIM_PORT, SIM_API_KEY, ...)",
            description="Simulate Gluetun's HTTP control server. Flags override the environment.",
        )
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the simulator named by ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command == "engine":
        return engine.run_from_args(args, os.environ)
    return gluetun.run_from_args(args, os.environ)


if __name__ == "__main__":
    sys.exit(main())
