"""Control engines: each is a pure decision function beside the loop that acts on it; the service wires them.

``provisioner`` (engine starts), ``health`` (the prober), ``autoscaler`` and ``vpn`` (the VPN monitor) never import
each other: a loop's collaborators arrive as keyword arguments, typed by small protocols defined beside it.
Beneath them are the shared primitives: ``admission`` (the provisioning gates), ``engine_api`` (addresses and
readiness), ``breaker`` and ``ports``.
"""
