"""The setting groups: one documented pydantic model per concern, each field read from its own flat variable.

A field's variable is its name in upper case (``min_replicas`` is ``MIN_REPLICAS``), or its alias in upper case
where the group's name would repeat the field's (``runtime.kind`` is ``RUNTIME``). Each description gives the
unit and range, the default, and why the setting exists; ``.env.example`` is generated from them.

The models live by concern: :mod:`.api`, :mod:`.runtime`, :mod:`.pool` (pool, health, breakers), :mod:`.streams`
(streams, proxy), :mod:`.vpn` and :mod:`.debug`, on the base :class:`~.base.Group`; all are named here.
A new concern (a cache, say) gets a model in one of them, or a module of its own, re-exported here, and one field
on :class:`~aceorch.config.Settings`; its variables keep flat names of their own, never a prefix or ``__`` nesting.
"""

from aceorch.config.groups.api import ApiSettings
from aceorch.config.groups.base import Group
from aceorch.config.groups.debug import DebugSettings
from aceorch.config.groups.pool import BreakerSettings, HealthSettings, PoolSettings
from aceorch.config.groups.runtime import RuntimeSettings
from aceorch.config.groups.streams import ProxySettings, StreamSettings
from aceorch.config.groups.vpn import VpnSettings

__all__ = [
    "ApiSettings", "RuntimeSettings", "PoolSettings", "HealthSettings", "BreakerSettings", "StreamSettings",
    "VpnSettings", "DebugSettings", "ProxySettings", "Group",
]
