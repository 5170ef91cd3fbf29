"""Control engines: each is a pure decision function plus one guarded loop, wired together by the service.

``breaker`` is a primitive beneath the others. ``provisioner``, ``health``, ``autoscaler`` and ``vpn`` never
import each other.
"""
