"""Adopting a Deployment (``spec.workloadRef``) in the simulator: the Services move to the
Rollout's pods only once they are ready, the Deployment scales down as configured, an edit of the
Deployment is a new revision, and editing it back rolls back."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from rollouts.api.validation import parse_rollout
from rollouts.simulator.simulation import SimLine, SimOptions, Simulation, SimulationError

NS = "shop"


def deployment(image: str = "web:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def rollout(scale_down: str = "onSuccess", steps: list[dict[str, Any]] | None = None) -> Any:
    return parse_rollout(
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "replicas": 4,
                "workloadRef": {"name": "web", "scaleDown": scale_down},
                "strategy": {
                    "canary": {
                        "stableService": "web",
                        "canaryService": "web-canary",
                        "scaleDownDelaySeconds": 0,
                        "abortScaleDownDelaySeconds": 0,
                        "steps": steps if steps is not None else [{"setWeight": 50}, {"pause": {}}],
                    }
                },
            },
        }
    )


def sim(scale_down: str = "onSuccess", **kw: Any) -> Simulation:
    return Simulation(
        rollout(scale_down, kw.pop("steps", None)), SimOptions(workload=deployment(), **kw)
    )


def workload_replicas(s: Simulation) -> int:
    doc = s.cluster.read_workload(s.rollout)
    assert doc is not None
    return int(doc["spec"]["replicas"])


def services(s: Simulation) -> dict[str, Any]:
    return dict(s.cluster.services.get((NS, "web"), {}))


@pytest.mark.parametrize(
    ("scale_down", "final"), [("onSuccess", 0), ("progressively", 0), ("never", 4)]
)
def test_adoption_moves_traffic_only_once_the_slot_is_ready(scale_down: str, final: int) -> None:
    s = sim(scale_down)
    seen: list[tuple[int, dict[str, Any], int]] = []

    def watch(_: SimLine) -> None:
        slot = s.cluster.read_slots(s.rollout).get("a")
        seen.append((slot.ready_replicas if slot else 0, services(s), workload_replicas(s)))

    assert s.settle(watch) == "Healthy"
    for ready, pinned, replicas in seen:
        if ready < 4:
            # the Services still reach the Deployment's pods, and those pods still run
            assert pinned == {} and replicas == 4, seen
    assert services(s) == {"web": "a", "web-canary": "a"}
    assert workload_replicas(s) == final
    st = s.rollout.status
    assert st is not None and st.adopted is True
    assert [r for _, _, r in seen] == sorted((r for _, _, r in seen), reverse=True)  # only down


def test_an_edit_of_the_deployment_is_a_new_revision_and_an_edit_back_rolls_back() -> None:
    s = sim()
    assert s.settle() == "Healthy"
    first = s.rollout.status.stable_revision if s.rollout.status else None

    s.edit_workload(deployment("web:2")["spec"]["template"])
    assert s.settle().startswith("Paused")  # at the pause after 50%, waiting for a person
    st = s.rollout.status
    assert st is not None and st.current_revision != first and st.weights.canary == 50
    second = st.current_revision

    s.edit_workload(deployment("web:3")["spec"]["template"])  # edited again in Git mid-rollout
    s.settle()
    st = s.rollout.status
    assert st is not None and st.current_revision not in (first, second)
    assert any(h.outcome == "Superseded" and h.revision == second for h in st.history)

    s.edit_workload(deployment("web:1")["spec"]["template"])  # rolled back in Git
    assert s.settle() == "Healthy"
    st = s.rollout.status
    assert st is not None and st.current_revision == st.stable_revision == first
    assert st.weights.canary == 0
    stable = st.stable_slot
    assert stable is not None
    assert s.cluster.read_slots(s.rollout)["b" if stable == "a" else "a"].replicas == 0


def test_the_simulation_rolls_out_a_deployment_change_to_healthy() -> None:
    s = sim(promote=True)
    result = s.run()
    assert result.reason == "Healthy"
    doc = s.cluster.read_workload(s.rollout)
    assert doc is not None and doc["spec"]["replicas"] == 0
    assert doc["spec"]["template"]["metadata"]["annotations"] == {
        "sluice.dev/simulated-update": "1"
    }


def test_a_missing_deployment_is_named() -> None:
    with pytest.raises(
        SimulationError, match=re.escape("spec.workloadRef: Deployment web is not in the file")
    ):
        Simulation(rollout(), SimOptions())
    s = sim()
    s.cluster.workloads.clear()  # deleted behind the Rollout's back
    with pytest.raises(
        SimulationError, match=re.escape("spec.workloadRef.name: Deployment shop/web not found")
    ):
        s.step()


def test_the_rollouts_own_selector_must_match_the_deployments_template() -> None:
    doc = copy.deepcopy(deployment())
    doc["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    s = Simulation(rollout(), SimOptions(workload=doc))
    with pytest.raises(SimulationError, match="selector does not match its template"):
        s.step()
