"""The built-in stream proxy: one engine session per content, fanned out to every viewer.

It sits between the API and the service: it reaches the orchestrator only through an
:class:`~aceorch.proxy.client.OrchestratorClient` (in-process when embedded, HTTP when standalone), so that one
implementation serves both modes.
"""
