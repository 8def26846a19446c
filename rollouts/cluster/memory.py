"""An in-memory cluster for the simulator and engine tests.

Pods become ready ``ready_delay`` seconds after they are created, read from an injected clock, so a
simulated rollout sees the same waiting-for-pods behaviour as a real one, only fast-forwarded.
A revision listed in ``never_ready`` never becomes ready (to exercise progress deadlines).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from rollouts.api.rollout import Rollout, RolloutStatus, SlotName
from rollouts.engine.plan import SlotObservation

Key = tuple[str, str]  # (namespace, rollout name)


@dataclass
class MemorySlot:
    revision: str
    template: dict[str, Any]
    ready_at: list[float] = field(default_factory=list)  # one entry per pod
    owned: bool = True  # owned by the Rollout (deleted with it); released slots outlive it

    def ready(self, now: float, never: bool) -> int:
        return 0 if never else sum(1 for t in self.ready_at if t <= now)


@dataclass
class MemoryEvent:
    time: float
    type: str
    reason: str
    message: str


class MemoryCluster:
    def __init__(self, clock: Callable[[], float], ready_delay: float = 10.0) -> None:
        self.clock = clock
        self.ready_delay = ready_delay
        self.never_ready: set[str] = set()
        self.slots: dict[Key, dict[SlotName, MemorySlot]] = {}
        self.services: dict[Key, dict[str, SlotName | None]] = {}
        self.statuses: dict[Key, RolloutStatus] = {}
        self.events: dict[Key, list[MemoryEvent]] = {}
        self.workloads: dict[Key, MemorySlot] = {}
        """Deployments Rollouts adopt (``template`` holds the whole Deployment document)."""

    @staticmethod
    def key(rollout: Rollout) -> Key:
        return (rollout.metadata.namespace, rollout.metadata.name)

    # ----------------------------------------------------------------------------- reads
    def read_slots(self, rollout: Rollout) -> dict[SlotName, SlotObservation]:
        now = self.clock()
        return {
            name: SlotObservation(
                revision=s.revision,
                replicas=len(s.ready_at),
                ready_replicas=s.ready(now, s.revision in self.never_ready),
            )
            for name, s in self.slots.get(self.key(rollout), {}).items()
        }

    def read_service_slots(
        self, rollout: Rollout, services: list[str]
    ) -> dict[str, SlotName | None]:
        known = self.services.get(self.key(rollout), {})
        return {s: known[s] for s in services if s in known}

    # ----------------------------------------------------------------------------- writes
    def deploy_slot(
        self,
        rollout: Rollout,
        slot: SlotName,
        revision: str,
        template: dict[str, Any],
        replicas: int,
    ) -> None:
        now = self.clock()
        self.slots.setdefault(self.key(rollout), {})[slot] = MemorySlot(
            revision=revision, template=template, ready_at=[now + self.ready_delay] * replicas
        )

    def scale_slot(self, rollout: Rollout, slot: SlotName, replicas: int) -> None:
        s = self.slots[self.key(rollout)][slot]
        if replicas < len(s.ready_at):
            del s.ready_at[replicas:]  # newest pods go first, as a ReplicaSet scales down
        else:
            s.ready_at.extend([self.clock() + self.ready_delay] * (replicas - len(s.ready_at)))

    def release_slot(self, rollout: Rollout, slot: SlotName) -> None:
        s = self.slots.get(self.key(rollout), {}).get(slot)
        if s is not None:
            s.owned = False

    def delete_slot(self, rollout: Rollout, slot: SlotName) -> None:
        self.slots.get(self.key(rollout), {}).pop(slot, None)

    def set_service_selector(self, rollout: Rollout, service: str, slot: SlotName | None) -> None:
        self.services.setdefault(self.key(rollout), {})[service] = slot

    def add_workload(self, namespace: str, doc: dict[str, Any]) -> None:
        """An existing Deployment, all its pods ready (what a Rollout adopts)."""
        replicas = (doc.get("spec") or {}).get("replicas", 1)
        self.workloads[(namespace, doc["metadata"]["name"])] = MemorySlot(
            revision="", template=copy.deepcopy(doc), ready_at=[self.clock()] * replicas
        )

    def edit_workload(self, namespace: str, name: str, template: dict[str, Any]) -> None:
        """A new pod template for the Deployment, as a Git change would bring."""
        self.workloads[(namespace, name)].template["spec"]["template"] = template

    def read_workload(self, rollout: Rollout) -> dict[str, Any] | None:
        ref = rollout.spec.workload_ref
        w = self.workloads.get((rollout.metadata.namespace, ref.name)) if ref else None
        if w is None:
            return None
        doc = copy.deepcopy(w.template)
        doc["spec"]["replicas"] = len(w.ready_at)
        doc["status"] = {"readyReplicas": w.ready(self.clock(), False)}
        return doc

    def scale_workload(self, rollout: Rollout, replicas: int) -> None:
        ref = rollout.spec.workload_ref
        assert ref is not None
        w = self.workloads[(rollout.metadata.namespace, ref.name)]
        if replicas < len(w.ready_at):
            del w.ready_at[replicas:]
        else:
            w.ready_at.extend([self.clock() + self.ready_delay] * (replicas - len(w.ready_at)))

    def write_status(self, rollout: Rollout, status: RolloutStatus) -> None:
        self.statuses[self.key(rollout)] = status

    def emit_event(
        self, rollout: Rollout, type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        self.events.setdefault(self.key(rollout), []).append(
            MemoryEvent(self.clock(), type, reason, message)
        )
