"""Adoption decided by the engine (``spec.workloadRef``): Services move only to a fully ready slot,
and the Deployment scales down per ``scaleDown``, only ever down."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.api.rollout import Rollout
from rollouts.api.validation import parse_rollout
from rollouts.engine import (
    Observed,
    ScaleWorkload,
    SetServiceSelector,
    SlotObservation,
    WorkloadObservation,
    decide,
)
from rollouts.engine.revision import template_hash
from rollouts.workload_ref import resolve

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DEPLOYMENT: dict[str, Any] = {
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 4,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1"}]},
        },
    },
}


def adopting(scale_down: str) -> Rollout:
    doc = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "replicas": 4,
            "workloadRef": {"name": "web", "scaleDown": scale_down},
            "strategy": {"canary": {"stableService": "web", "canaryService": "web-canary"}},
        },
    }
    return resolve(parse_rollout(doc), DEPLOYMENT)


@pytest.mark.parametrize(
    ("scale_down", "while_coming_up", "once_adopted"),
    [("never", None, None), ("onSuccess", None, 0), ("progressively", 1, 0)],
)
def test_services_wait_for_the_slot_and_the_deployment_scales_as_configured(
    scale_down: str, while_coming_up: int | None, once_adopted: int | None
) -> None:
    r = adopting(scale_down)
    rev = template_hash(r.spec.template)
    workload = WorkloadObservation(replicas=4, ready_replicas=4)

    def step(ready: int, workload: WorkloadObservation) -> tuple[list[Any], Rollout]:
        slots = {"a": SlotObservation(rev, 4, ready)} if r.status else {}
        plan = decide(r, Observed(slots=slots, workload=workload), NOW)
        return list(plan.actions), r.model_copy(update={"status": plan.status})

    actions, r = step(0, workload)  # the first slot is created
    assert not any(isinstance(a, SetServiceSelector) for a in actions)
    assert not any(isinstance(a, ScaleWorkload) for a in actions)

    actions, r = step(3, workload)  # 3 of 4 ready: not yet serving
    assert not any(isinstance(a, SetServiceSelector) for a in actions)
    scaled = [a.replicas for a in actions if isinstance(a, ScaleWorkload)]
    assert scaled == ([] if while_coming_up is None else [while_coming_up])
    assert r.status is not None and not r.status.adopted

    if while_coming_up is not None:
        workload = WorkloadObservation(replicas=while_coming_up, ready_replicas=while_coming_up)
    actions, r = step(4, workload)  # all ready: the Services move, then the Deployment goes
    assert SetServiceSelector("web", "a") in actions
    assert r.status is not None and r.status.adopted is True
    scaled = [a.replicas for a in actions if isinstance(a, ScaleWorkload)]
    assert scaled == ([] if once_adopted is None else [once_adopted])


def test_the_deployment_is_never_scaled_back_up() -> None:
    r = adopting("progressively")
    rev = template_hash(r.spec.template)
    plan = decide(r, Observed(workload=WorkloadObservation(4, 4)), NOW)
    r = r.model_copy(update={"status": plan.status})
    # someone scaled the Deployment to 1 by hand; with no slot pod ready the target would be 4
    plan = decide(
        r,
        Observed(slots={"a": SlotObservation(rev, 4, 0)}, workload=WorkloadObservation(1, 1)),
        NOW,
    )
    assert not any(isinstance(a, ScaleWorkload) for a in plan.actions)


def test_deleting_hands_traffic_back_only_to_a_deployment_that_is_there() -> None:
    from rollouts.api.rollout import RolloutStatus
    from rollouts.engine import DeleteSlot, ReleaseSlot, deletion_actions
    from rollouts.engine.deletion import handback

    r = adopting("onSuccess").model_copy(update={"status": RolloutStatus(stable_slot="a")})
    # scaled to 0: back up to the Rollout's replicas, and wait for its pods
    assert handback(r, WorkloadObservation(0, 0)) == ((ScaleWorkload(4),), True)
    assert handback(r, WorkloadObservation(4, 2)) == ((), True)
    assert handback(r, WorkloadObservation(4, 4)) == ((), False)
    handed = deletion_actions(r, ["web", "web-canary"])
    assert SetServiceSelector("web", None) in handed  # the slot key goes: its pods serve
    assert DeleteSlot("a") in handed and DeleteSlot("b") in handed
    # the Deployment was deleted as well: the stable slot keeps serving, as without workloadRef
    kept = deletion_actions(r, ["web", "web-canary"], workload_present=False)
    assert SetServiceSelector("web", "a") in kept and ReleaseSlot("a") in kept
    assert DeleteSlot("a") not in kept
