"""Helpers of the monitoring tests: Debian's promtool and the sample names aceorch exports (the orchestrator's and
its built-in proxy's)."""

from __future__ import annotations

import re
import shutil
from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from aceorch.config import Settings
from aceorch.proxy.hub import Hub
from aceorch.proxy.metrics import ProxyCollector
from aceorch.service.metrics import Metrics

#: An aceorch metric name inside PromQL.
METRIC = re.compile(r"\borch_[a-z0-9_]+")


def promtool() -> str:
    """Debian's promtool (the ``prometheus`` package, which ``scripts/ensure-system.sh`` installs)."""
    path = shutil.which("promtool")
    assert path, "promtool is missing: run scripts/ensure-system.sh (installs Debian's prometheus package)"
    return path


def exported_samples() -> set[str]:
    """Every sample name the service exports (with ``_total``, ``_bucket``, ... suffixes), labelled children made,
    with the embedded proxy's collector registered as ``aceorch serve`` registers it."""
    m = Metrics(vpn_names=("gluetun",))
    # the collector reads only the hub's state: no client or HTTP pool is used
    hub = Hub(Settings(_env_file=None).proxy, client=SimpleNamespace(), http=SimpleNamespace())  # type: ignore[arg-type]
    m.registry.register(ProxyCollector(hub))
    m.vpn_gluetun_restarts.labels(vpn="gluetun", outcome="restarted").inc()
    m.provision_duration.labels(kind="acestream").observe(1.0)
    m.provision_failures.labels(kind="acestream", code="general_error").inc()
    m.provision_total.labels(kind="acestream").inc()
    m.stress_events.labels(event_type="slow_provisioning", severity="warning").inc()
    return {s.name for f in text_string_to_metric_families(m.render().decode()) for s in f.samples}
