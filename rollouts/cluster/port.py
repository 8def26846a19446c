"""The Cluster port: everything the engine's actions need from Kubernetes, and nothing more.

A small Protocol lets the same reconcile loop drive the real API (``kube.py``) and the in-memory
cluster the simulator and the engine tests use, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from rollouts.api.rollout import Rollout, RolloutStatus, SlotName
from rollouts.engine.plan import SlotObservation


class Cluster(Protocol):
    def read_slots(self, rollout: Rollout) -> dict[SlotName, SlotObservation]:
        """The Rollout's slot Deployments that exist, with revision and readiness."""
        ...

    def read_service_slots(
        self, rollout: Rollout, services: list[str]
    ) -> dict[str, SlotName | None]:
        """Which slot each Service's selector pins (None: both slots); unknown Services are omitted."""
        ...

    def deploy_slot(
        self,
        rollout: Rollout,
        slot: SlotName,
        revision: str,
        template: dict[str, Any],
        replicas: int,
    ) -> None: ...

    def scale_slot(self, rollout: Rollout, slot: SlotName, replicas: int) -> None: ...

    def release_slot(self, rollout: Rollout, slot: SlotName) -> None:
        """Let the slot Deployment outlive the Rollout (no owner reference, no GC)."""
        ...

    def delete_slot(self, rollout: Rollout, slot: SlotName) -> None:
        """Delete the slot Deployment; one that is already gone is not an error."""
        ...

    def set_service_selector(
        self, rollout: Rollout, service: str, slot: SlotName | None
    ) -> None: ...

    def read_workload(self, rollout: Rollout) -> dict[str, Any] | None:
        """The Deployment ``spec.workloadRef`` names (spec and status), or None when absent."""
        ...

    def scale_workload(self, rollout: Rollout, replicas: int) -> None:
        """Scale the Deployment ``spec.workloadRef`` names (only its replicas change)."""
        ...

    def write_status(self, rollout: Rollout, status: RolloutStatus) -> None:
        """One write of the whole status per reconcile (the status subresource on Kubernetes)."""
        ...

    def emit_event(
        self, rollout: Rollout, type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None: ...
