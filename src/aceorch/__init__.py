"""aceorch: an orchestrator for AceStream engines.

Layers, top to bottom (enforced by ``.importlinter``)::

    cli -> api | dashboard -> service -> control -> runtime | store | debuglog | analysis
        -> models | config | errors | aiokits

``aceorch.sim`` (the engine and Gluetun simulators) is standard-library only and imports nothing else from aceorch.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
