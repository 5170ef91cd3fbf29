"""The AceStream engine simulator: ``python -m aceorch.sim engine`` (``aceorch sim engine``).

It answers the engine HTTP API that aceorch and the acexy proxy use closely enough that neither can tell it
from a real engine, and adds fault injection (engine-wide and per-content modes, startup delay, failed
start, crash and hang timers, session cap, simulated restarts) and the ``/__sim/*`` control API. Standard
library only: it runs as ``python3 -S -m aceorch.sim engine`` in a bare image.

The package, bottom to top:

- :mod:`~aceorch.sim.engine.content`: content ids, swarm infohashes, content modes, start sources;
- :mod:`~aceorch.sim.engine.config`: :class:`EngineConfig` from the environment and flags;
- :mod:`~aceorch.sim.engine.state`: :class:`~aceorch.sim.engine.state.EngineState`, all mutable state
  (sessions, modes, counters, timers) behind one lock;
- :mod:`~aceorch.sim.engine.playback` and :mod:`~aceorch.sim.engine.handler`: the HTTP routes, media and
  the rest;
- :mod:`~aceorch.sim.engine.server`: :class:`EngineSimulator` (state plus listening socket, its lifecycle)
  and the CLI.
"""

from __future__ import annotations

from aceorch.sim.engine.config import DEFAULT_HTTP_PORT, ENGINE_MODES, EngineConfig, load_config
from aceorch.sim.engine.content import derive_infohash, parse_content_mode, pick_source
from aceorch.sim.engine.handler import EngineHandler, client_allowed
from aceorch.sim.engine.server import EngineSimulator, add_arguments, run_from_args

__all__ = [
    "DEFAULT_HTTP_PORT",
    "ENGINE_MODES",
    "EngineConfig",
    "EngineHandler",
    "EngineSimulator",
    "add_arguments",
    "client_allowed",
    "derive_infohash",
    "load_config",
    "parse_content_mode",
    "pick_source",
    "run_from_args",
]
