"""The service layer: :class:`~aceorch.service.core.Service` builds the components, starts and stops their tasks.

Components: ``fleet`` (engines), ``streams``, ``collector`` (stats), ``provisioning`` (starts, scale, gc),
``status`` (read models), ``liveness`` (runtime and store pings) and ``debug`` (debug mode at run time).
"""

from aceorch.service.core import Service

__all__ = ["Service"]
