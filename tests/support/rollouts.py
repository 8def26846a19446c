"""Builders shared by the rollout tests: Rollouts from a few keywords, and a harness that drives
the product's simulator one reconcile at a time with a hand-moved clock.

It holds no logic the product needs: the wiring is ``rollouts.simulator.simulation.Simulation``'s."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rollouts.api.rollout import Rollout, RolloutStatus
from rollouts.api.validation import parse_rollout
from rollouts.engine import Plan
from rollouts.engine.plan import AnalysisPhase, RequestKind
from rollouts.simulator.simulation import SimOptions, Simulation, next_revision


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
    """The operator's loop in miniature: reconcile at hand-chosen times, with requests.

    A thin face over the product's own ``Simulation``, so the tests drive exactly the wiring
    ``sluice simulate`` uses; the test only moves the clock by hand.
    """

    def __init__(
        self,
        doc: dict[str, Any],
        outcomes: dict[str, AnalysisPhase] | None = None,
        analysis_seconds: float = 30.0,
        ready_delay: float = 5.0,
    ) -> None:
        opts = SimOptions(
            analysis=dict(outcomes or {"*": "Successful"}),
            analysis_seconds=analysis_seconds,
            ready_delay=ready_delay,
        )
        self.sim = Simulation(parse_rollout(doc), opts)
        self.cluster, self.router, self.verdicts = (
            self.sim.cluster,
            self.sim.router,
            self.sim.verdicts,
        )
        self.ports = self.sim.ports

    @property
    def t(self) -> float:
        return self.sim.t

    @t.setter
    def t(self, value: float) -> None:
        self.sim.t = value

    @property
    def rollout(self) -> Rollout:
        return self.sim.rollout

    @rollout.setter
    def rollout(self, value: Rollout) -> None:
        self.sim.rollout = value

    @property
    def now(self) -> datetime:
        return self.sim.now

    @property
    def status(self) -> RolloutStatus:
        assert self.rollout.status is not None
        return self.rollout.status

    def reconcile(self, request: RequestKind | None = None) -> Plan:
        return self.sim.step(self.sim.request(request) if request is not None else None)

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

    def update(self, image: str) -> None:
        """Push a new spec revision with ``image``, as a GitOps tool would."""
        self.rollout = next_revision(self.rollout, SimOptions(set_image=image))

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
