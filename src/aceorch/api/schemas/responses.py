"""The API's response models, one per response body so that OpenAPI declares each, all named here.

They live by resource: :mod:`.common` (the base model, :data:`~.common.Time`, labels, plain messages and errors),
:mod:`.engines`, :mod:`.streams`, :mod:`.provisioning` (starts, containers, scaling, the idle sweep),
:mod:`.health` (engine health, breakers, liveness and readiness), :mod:`.vpn`, :mod:`.status` (the orchestrator
status) and :mod:`.debug`.
"""

from aceorch.api.schemas.common import AUTH_ERRORS, ErrorPublic, Labels, Message, Time, mask_labels
from aceorch.api.schemas.debug import (
    DebugChangedPublic,
    DebugFilePublic,
    DebugSettingsPublic,
    DebugStatusPublic,
    StressEventPublic,
)
from aceorch.api.schemas.engines import EngineDetailPublic, EngineHealthReportPublic, EnginePublic
from aceorch.api.schemas.health import (
    BreakerPublic,
    BreakerResetPublic,
    HealthStatusPublic,
    LivenessPublic,
    ReadinessChecksPublic,
    ReadinessPublic,
)
from aceorch.api.schemas.provisioning import (
    ContainerDeletedPublic,
    ContainerProvisionedPublic,
    ContainerPublic,
    EngineProvisionedPublic,
    GcPublic,
    ProvisioningErrorDetail,
    ProvisioningErrorPublic,
    ScalePublic,
)
from aceorch.api.schemas.status import (
    BlockedReasonPublic,
    CapacityPublic,
    ConfigSummaryPublic,
    EngineCountsPublic,
    NodePublic,
    OrchestratorStatusPublic,
    ProvisioningStatePublic,
    StreamCountsPublic,
)
from aceorch.api.schemas.streams import StatSnapshotPublic, StreamEndedPublic, StreamPublic, StreamStoppedPublic
from aceorch.api.schemas.vpn import VpnEntryPublic, VpnStatusPublic, VpnSummaryEntryPublic, VpnSummaryPublic

__all__ = [
    "Time",
    "Labels",
    "mask_labels",
    "AUTH_ERRORS",
    "Message",
    "ErrorPublic",
    "ProvisioningErrorDetail",
    "ProvisioningErrorPublic",
    "EnginePublic",
    "StreamPublic",
    "EngineDetailPublic",
    "StatSnapshotPublic",
    "StreamEndedPublic",
    "EngineHealthReportPublic",
    "StreamStoppedPublic",
    "EngineProvisionedPublic",
    "ContainerProvisionedPublic",
    "ContainerPublic",
    "ContainerDeletedPublic",
    "ScalePublic",
    "GcPublic",
    "BreakerPublic",
    "HealthStatusPublic",
    "BreakerResetPublic",
    "VpnStatusPublic",
    "VpnEntryPublic",
    "VpnSummaryEntryPublic",
    "EngineCountsPublic",
    "StreamCountsPublic",
    "CapacityPublic",
    "VpnSummaryPublic",
    "BlockedReasonPublic",
    "ProvisioningStatePublic",
    "ConfigSummaryPublic",
    "OrchestratorStatusPublic",
    "DebugFilePublic",
    "DebugSettingsPublic",
    "DebugStatusPublic",
    "DebugChangedPublic",
    "StressEventPublic",
    "LivenessPublic",
    "ReadinessChecksPublic",
    "ReadinessPublic",
    "NodePublic",
]
