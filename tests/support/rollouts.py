"""Builders shared by the rollout tests: Rollouts from a few keywords, and a harness that drives
the real reconcile loop on the in-memory cluster with a hand-moved clock.

It only wires the product's own ports together; it holds no logic the product needs."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from rollouts.api.rollout import RolloutStatus
from rollouts.api.validation import parse_rollout
from rollouts.cluster.memory import MemoryCluster
from rollouts.engine import Plan, Request
from rollouts.engine.plan import AnalysisPhase
from rollouts.reconcile import Ports, reconcile
from rollouts.routing.memory import MemoryRouter
from rollouts.simulate import EPOCH
from rollouts.verdicts import ScriptedVerdicts


def rollout_doc(
    *,
    steps: list[dict[str, Any]] | None = None,
    replicas: int = 4,
    router: dict[str, Any] | None = None,
    blue_green: dict[str, Any] | None = None,
    image: str = "web:1",
    background: dict[str, Any] | None = None,
    deadline: int = 600,
) -> dict[str, Any]:
    strategy: dict[str, Any]
    if blue_green is not None:
        strategy = {
            "blueGreen": {"activeService": "web", "previewService": "web-preview", **blue_green}
        }
    else:
        canary: dict[str, Any] = {
            "stableService": "web",
            "canaryService": "web-canary",
            "steps": steps if steps is not None else [],
        }
        if router is not None:
            canary["trafficRouting"] = router
        if background is not None:
            canary["analysis"] = background
        strategy = {"canary": canary}
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "ns", "generation": 1},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
            "strategy": strategy,
        },
    }


ISTIO = {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}}


class Harness:
    """The operator's loop in miniature: reconcile at hand-chosen times, with requests."""

    def __init__(
        self,
        doc: dict[str, Any],
        outcomes: dict[str, AnalysisPhase] | None = None,
        analysis_seconds: float = 30.0,
        ready_delay: float = 5.0,
    ) -> None:
        self.t = 0.0
        self.cluster = MemoryCluster(lambda: self.t, ready_delay=ready_delay)
        self.router = MemoryRouter()
        self.verdicts = ScriptedVerdicts(lambda: self.t, outcomes, analysis_seconds)
        self.ports = Ports(self.cluster, self.router, self.verdicts)
        self.rollout = parse_rollout(doc)
        self.plans: list[Plan] = []
        self._n = 0

    @property
    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.t)

    @property
    def status(self) -> RolloutStatus:
        assert self.rollout.status is not None
        return self.rollout.status

    def reconcile(self, request: str | None = None) -> Plan:
        req = None
        if request is not None:
            self._n += 1
            req = Request(request, f"{request}@{self._n}")  # type: ignore[arg-type]
        plan = reconcile(self.rollout, self.ports, self.now, req)
        self.rollout = self.rollout.model_copy(update={"status": plan.status})
        self.plans.append(plan)
        return plan

    def run(self, seconds: float, every: float = 1.0) -> None:
        end = self.t + seconds
        while self.t < end:
            self.t = min(self.t + every, end)
            self.reconcile()

    def until(
        self, pred: Callable[[Harness], bool], limit: float = 3600, every: float = 1.0
    ) -> None:
        start = self.t
        self.reconcile()
        while not pred(self):
            if self.t - start > limit:
                raise AssertionError(f"not reached within {limit}s; status: {self.status.message}")
            self.t += every
            self.reconcile()

    def update(self, image: str | None = None, doc: dict[str, Any] | None = None) -> None:
        """Push a new spec revision, as a GitOps tool would."""
        new = (
            copy.deepcopy(doc)
            if doc is not None
            else self.rollout.model_dump(mode="json", by_alias=True)
        )
        if doc is None:
            new["spec"]["template"]["spec"]["containers"][0]["image"] = image or "web:next"
        new["metadata"]["generation"] = (self.rollout.metadata.generation or 1) + 1
        new.pop("status", None)
        self.rollout = parse_rollout(new).model_copy(update={"status": self.rollout.status})

    def stable(self) -> None:
        """Deploy the initial revision and wait until it is Healthy."""
        self.until(lambda h: h.status.phase == "Healthy")

    def events(self) -> list[str]:
        return [e.reason for e in self.cluster.events.get(("ns", "web"), [])]

    def services(self) -> dict[str, Any]:
        return self.cluster.services.get(("ns", "web"), {})

    def replicas(self, slot: str) -> int:
        s = self.cluster.slots[("ns", "web")].get(slot)  # type: ignore[call-overload]
        return len(s.ready_at) if s is not None else 0
