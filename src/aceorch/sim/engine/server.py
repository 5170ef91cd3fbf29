"""The engine simulator's process: :class:`EngineSimulator` (state plus listening socket) and its CLI.

:meth:`EngineSimulator.run` runs the lifecycle on the calling thread: the startup delay, ``SIM_FAIL_START``,
opening the port, then a 50 ms tick that fires the crash timer, expires idle sessions and carries out
``/__sim/restart``, until SIGTERM sets ``stop_event``; then a temporary cache directory is removed. The
server answers each request on its own daemon thread, so a hung request blocks nobody else and never delays
process exit.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Mapping

from aceorch.sim._common import ConfigError, SimHTTPServer, flags_from_args, install_stop_signals, log
from aceorch.sim.engine.config import EngineConfig, load_config
from aceorch.sim.engine.handler import EngineHandler
from aceorch.sim.engine.state import EngineState

__all__ = ["EngineSimulator", "add_arguments", "run_from_args"]


class EngineSimulator(EngineState):
    """One simulated engine: its state, and the lifecycle of its listening socket."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self._server: SimHTTPServer | None = None

    # ----------------------------------------------------------------- lifecycle

    def _open(self) -> SimHTTPServer:
        server = SimHTTPServer((self.config.host, self.config.http_port), EngineHandler, self)
        self._server = server
        self.port_opened()
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="engine-sim-serve", daemon=True
        ).start()
        return server

    def _close(self) -> None:
        server, self._server = self._server, None
        self.port_closed()
        if server is not None:
            server.shutdown()
            server.server_close()

    def run(self) -> int:
        """Serve until ``stop_event`` is set (SIGTERM); returns the process exit status."""
        cfg = self.config
        remaining = cfg.startup_delay_s - self.uptime()
        if remaining > 0:
            if cfg.fail_start is None:  # SIM_FAIL_START promises exactly one stderr line
                log(f"engine-sim: starting; opening the port in {remaining:.2f} s")
            if self.stop_event.wait(remaining):
                return 0
        if cfg.fail_start is not None:
            log(f"engine-sim: SIM_FAIL_START: exiting with status {cfg.fail_start} without opening the port")
            return cfg.fail_start
        try:
            self._open()
        except OSError as exc:
            log(f"engine-sim: cannot listen on {cfg.host}:{cfg.http_port}: {exc}")
            return 1
        self.arm_timers()
        log(f"engine-sim: listening on {cfg.host}:{cfg.http_port} (mode {self.effective_mode()})")
        try:
            while not self.stop_event.wait(0.05):
                self._tick()
        finally:
            self._close()
            self.cache.close()
        log("engine-sim: stopped")
        return 0

    def _tick(self) -> None:
        crash_due, down_s = self.take_due_work()
        if crash_due:
            log("engine-sim: crashing on purpose (crash_after_s)")
            os._exit(1)
        self.expire_idle_sessions()
        if down_s is not None:
            self._restart(down_s)

    def _restart(self, down_s: float) -> None:
        log(f"engine-sim: simulated restart, port closed for {down_s:g} s")
        self.drop_all_sessions()
        self._close()
        if self.stop_event.wait(down_s):
            return
        while not self.stop_event.is_set():
            try:
                self._open()
                log("engine-sim: port reopened")
                return
            except OSError as exc:
                log(f"engine-sim: reopening failed ({exc}); retrying")
                self.stop_event.wait(0.2)


# --------------------------------------------------------------------- CLI

_FLAGS: list[tuple[str, str, str]] = [
    ("--conf", "CONF", "engine flags, one per line (--http-port=N, --https-port=M, --bind-all)"),
    ("--http-port", "HTTP_PORT", "HTTP port (beats CONF and HTTP_PORT; default 6878)"),
    ("--https-port", "HTTPS_PORT", "HTTPS port (recorded only)"),
    ("--p2p-port", "P2P_PORT", "P2P port (recorded only)"),
    ("--host", "SIM_HOST", "listen address (default 0.0.0.0)"),
    ("--startup-delay", "SIM_STARTUP_DELAY_S", "seconds before the port opens"),
    ("--hang", "SIM_HANG", "1: never answer; ace: only /ace/* and /content/* hang"),
    ("--hang-after", "SIM_HANG_AFTER_S", "healthy for this long, then hang"),
    ("--fail-start", "SIM_FAIL_START", "exit with this status (1-255, or true = 1) instead of listening"),
    ("--crash-after", "SIM_CRASH_AFTER_S", "exit abruptly with status 1 after this long"),
    ("--time-to-dl", "SIM_TIME_TO_DL_S", "session start to dl (default 9 x time scale)"),
    ("--content-modes", "SIM_CONTENT_MODES", "JSON object: content id or infohash (or *) -> mode"),
    ("--playlist-delay", "SIM_PLAYLIST_DELAY_S", "get_status says playlist_loaded: false this long"),
    ("--session-idle", "SIM_SESSION_IDLE_S", "idle sessions expire after this long (default 60)"),
    ("--max-sessions", "SIM_MAX_SESSIONS", "cap on concurrent sessions (0 = none)"),
    ("--time-scale", "SIM_TIME_SCALE", "multiplies built-in delays (default 1)"),
    ("--cache-dir", "SIM_CACHE_DIR", "the disk cache streaming fills (default: a temporary directory)"),
    ("--cache-limit-mb", "SIM_CACHE_LIMIT_MB", "disk cache size limit in MiB (default 64; 0 = no cache)"),
    ("--stream-kbps", "SIM_STREAM_KBPS", "playback rate in kilobytes per second (default about 263)"),
    ("--media-file", "SIM_MEDIA_FILE", "an MPEG-TS file to play in a loop instead of synthetic packets"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``aceorch sim engine``; each overrides the environment variable named in its help."""
    for flag, env_name, text in _FLAGS:
        parser.add_argument(flag, dest=env_name, default=None, metavar="VALUE", help=f"{text} [env {env_name}]")
    parser.add_argument(
        "--bind-all",
        dest="BIND_ALL",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve clients outside loopback/RFC1918 [env BIND_ALL]",
    )
    parser.add_argument(
        "--log-requests",
        dest="SIM_LOG_REQUESTS",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log every request on stderr [env SIM_LOG_REQUESTS]",
    )


def run_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Parse the configuration and serve until SIGTERM; exit status 2 on a bad value."""
    try:
        config = load_config(env, flags_from_args(args))
    except ConfigError as exc:
        log(f"engine-sim: invalid configuration: {exc}")
        return 2
    simulator = EngineSimulator(config)
    restore = install_stop_signals(simulator.stop_event)
    try:
        return simulator.run()
    finally:
        restore()
