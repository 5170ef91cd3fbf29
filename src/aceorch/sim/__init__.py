"""Simulators for tests and demos: an AceStream engine and a Gluetun control server.

Standard library only, and importing nothing else from aceorch: the images run them as
``python3 -m aceorch.sim engine`` (or ``gluetun``) from a tree holding just an empty
``aceorch/__init__.py`` and this package. ``aceorch.sim.__main__.main(argv)`` is the entry point; the
``aceorch sim`` CLI delegates to it.

- :mod:`aceorch.sim.engine`: the AceStream engine HTTP API that aceorch and acexy use, with fault
  injection and the ``/__sim/*`` control API.
- :mod:`aceorch.sim.gluetun`: the Gluetun control-server routes aceorch reads, with a Docker healthcheck
  mode.
- :mod:`aceorch.sim.mpegts`: 188-byte MPEG-TS packets for the engine's playback.
"""

__all__: list[str] = []
