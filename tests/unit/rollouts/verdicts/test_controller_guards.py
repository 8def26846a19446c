"""What the controller gives an AnalysisRun for the pod model and the sample-ratio guard (issue 12,
items 1 and 2 in the controller path): the canary's pod count at run creation (recorded in the
run as ``compare.canaryPods``; a template's count overrides it) and the asked canary share on
every tick (the router's weight, or the replica ratio without a router)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from analysis.api import parse_template
from analysis.lifecycle import Analysis, RunLifecycle, RunRequest, TemplateRef, Unresolved
from analysis.providers.port import Unavailable
from analysis.store.memory import MemoryAnalysisStore
from analysis.store.port import RunOwner
from rollouts.api.rollout import Rollout, RolloutStatus, SlotStatus, Weights
from rollouts.api.validation import parse_rollout
from rollouts.verdicts.analysis_runs import canary_pods, canary_share
from rollouts.verdicts.evidence_status import metric_result
from tests.support.rollouts import rollout_doc
from tests.unit.rollouts.verdicts.test_analysis_runs import STEPS, counts_template, run

ISTIO = {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}}


def rollout(**kw: Any) -> Rollout:
    return parse_rollout(rollout_doc(**kw))


def with_status(r: Rollout, **status: Any) -> Rollout:
    base = {"currentRevision": "new", "stableRevision": "old", "stableSlot": "a"}
    return r.model_copy(update={"status": RolloutStatus.model_validate(base | status)})


# ------------------------------------------------------------------------------ the asked share


def test_share_with_a_router_is_the_weight_sluice_set() -> None:
    r = with_status(rollout(steps=STEPS, router=ISTIO), weights=Weights(canary=25).wire())
    assert canary_share(r) == 0.25


def test_share_without_a_router_is_the_replica_ratio_not_the_reported_weight() -> None:
    """10% of 3 replicas is one canary pod beside two stable ones: a third of the requests."""
    slots = [
        SlotStatus(name="a", role="stable", replicas=2).wire(),
        SlotStatus(name="b", role="canary", replicas=1).wire(),
    ]
    r = with_status(rollout(steps=STEPS, replicas=3), weights={"canary": 10}, slots=slots)
    assert canary_share(r) == pytest.approx(1 / 3)


def test_no_share_is_asked_of_a_preview_or_a_promoted_revision() -> None:
    bg = rollout(blue_green={"prePromotionAnalysis": {"templates": [{"templateName": "e"}]}})
    assert canary_share(with_status(bg)) is None
    promoted = with_status(rollout(steps=STEPS, router=ISTIO), stableRevision="new")
    assert canary_share(promoted) is None


# ------------------------------------------------------------------------------ the pod count

ANALYSIS = {"analysis": {"templates": [{"templateName": "errors"}]}}


def test_step_runs_take_the_smallest_pod_count_of_any_analysed_step() -> None:
    steps = [{"setWeight": 20}, ANALYSIS, {"setWeight": 50}, ANALYSIS]
    r = rollout(steps=steps, replicas=10)
    # 20% of 10 is 2 pods, 50% is 5: one count (the smallest) for the whole chain of step runs
    assert canary_pods(r, "step", 1) == 2
    assert canary_pods(r, "step", 3) == 2


def test_a_background_run_takes_the_smallest_over_the_steps_it_spans() -> None:
    steps = [{"setWeight": 10}, {"pause": {}}, {"setWeight": 40}, {"pause": {}}]
    background = {"templates": [{"templateName": "errors"}], "startingStep": 2}
    r = rollout(steps=steps, replicas=10, background=background)
    assert canary_pods(r, "background", None) == 4  # from step 3 on: 40% of 10
    r0 = rollout(steps=steps, replicas=10, background={**background, "startingStep": 0})
    assert canary_pods(r0, "background", None) == 1  # from the start: 10% of 10


def test_blue_green_takes_the_preview_before_promotion() -> None:
    bg = {
        "prePromotionAnalysis": {"templates": [{"templateName": "e"}]},
        "postPromotionAnalysis": {"templates": [{"templateName": "e"}]},
        "previewReplicaCount": 2,
    }
    r = rollout(blue_green=bg, replicas=6)
    assert canary_pods(r, "prePromotion", None) == 2
    assert canary_pods(r, "postPromotion", None) == 2  # chained with the preview's evidence


def pod_template(compare: dict[str, Any]) -> dict[str, Any]:
    doc = counts_template()
    doc["spec"]["metrics"][0]["compare"] = {"tolerance": 1.25, **compare}
    return doc


def test_the_run_records_the_pod_count_the_controller_gives() -> None:
    steps = [{"setWeight": 25}, ANALYSIS]
    sim = run(rollout_doc(steps=steps, replicas=8), "healthy", [pod_template({"podModel": True})])
    assert sim.store is not None
    (stored,) = sim.store.runs.values()
    compare = stored.spec.metrics[0].compare
    assert compare is not None and compare.canary_pods == 2  # 25% of 8
    assert stored.status is not None
    details = stored.status.metrics[0].evidence
    assert details is not None and details.details.canary_pods == 2  # the evidence shows it


def test_a_declared_spread_alone_gets_the_pod_count_too() -> None:
    steps = [{"setWeight": 50}, ANALYSIS]
    sim = run(rollout_doc(steps=steps, replicas=6), "healthy", [pod_template({"podSpread": 0.2})])
    assert sim.store is not None
    (stored,) = sim.store.runs.values()
    compare = stored.spec.metrics[0].compare
    assert compare is not None and compare.canary_pods == 3 and compare.pod_spread == 0.2


def test_the_template_pod_count_overrides_the_controller() -> None:
    steps = [{"setWeight": 25}, ANALYSIS]
    sim = run(rollout_doc(steps=steps, replicas=8), "healthy", [pod_template({"canaryPods": 5})])
    assert sim.store is not None
    (stored,) = sim.store.runs.values()
    compare = stored.spec.metrics[0].compare
    assert compare is not None and compare.canary_pods == 5


def test_pods_are_the_sampling_unit_by_default_with_the_rollouts_count() -> None:
    sim = run(rollout_doc(steps=STEPS), "healthy", [counts_template()])
    assert sim.store is not None
    (stored,) = sim.store.runs.values()
    compare = stored.spec.metrics[0].compare
    assert compare is not None and compare.pods and compare.canary_pods is not None
    assert compare.canary_pods >= 1


def test_a_metric_with_the_pod_model_off_is_left_as_written() -> None:
    sim = run(rollout_doc(steps=STEPS), "healthy", [pod_template({"podModel": False})])
    assert sim.store is not None
    (stored,) = sim.store.runs.values()
    compare = stored.spec.metrics[0].compare
    assert compare is not None and compare.canary_pods is None and not compare.pods


def _lifecycle_request(compare: dict[str, Any]) -> tuple[RunLifecycle, RunRequest]:
    store = MemoryAnalysisStore()
    store.templates[("ns", "errors")] = parse_template(pod_template(compare))
    lifecycle = RunLifecycle(
        store,
        lambda *_: Unavailable("no provider"),
        lambda: datetime(2026, 12, 2, tzinfo=UTC).timestamp(),
        result_of=metric_result,
    )
    analysis = Analysis(templates=(TemplateRef("errors"),))
    request = RunRequest(
        owner=RunOwner("ns", "web", "uid"),
        name="web-1",
        revision="r1",
        attempt=1,
        kind="step",
        step_index=1,
        analysis=analysis,
        budget=(analysis,),
        builtins={"canary-service": "web-canary"},
    )
    return lifecycle, request


def test_an_owner_without_a_pod_count_gets_an_error_naming_the_field() -> None:
    lifecycle, request = _lifecycle_request({"podModel": True})
    with pytest.raises(Unresolved, match=r"compare\.canaryPods"):
        lifecycle.create(request)


def test_the_default_pod_model_without_a_count_judges_requests_and_says_so() -> None:
    """Not asked for by the template, the pod model gives way when the owner has no count:
    the run records podModel false (no widening), rather than failing an analysis."""
    lifecycle, request = _lifecycle_request({})
    run = lifecycle.create(request)
    compare = run.spec.metrics[0].compare
    assert compare is not None and compare.pod_model is False and compare.canary_pods is None
