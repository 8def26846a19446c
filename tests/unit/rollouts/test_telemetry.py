"""The controller's own metrics: the names issue 5 lists, what one reconcile records, transitions
counted once per change, and series dropped when a Rollout goes away."""

from __future__ import annotations

import time
from typing import Any

import kubernetes
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rollouts import operator
from rollouts.api.rollout import Rollout, RolloutStatus
from rollouts.api.validation import parse_rollout
from rollouts.settings import Settings
from rollouts.telemetry import Telemetry
from rollouts.verdicts.scripted import ScriptedVerdicts
from tests.support.rollouts import ISTIO, rollout_doc


def status(phase: str | None, weight: int = 0, step: int | None = None, **kw: Any) -> RolloutStatus:
    return RolloutStatus.model_validate(
        {"phase": phase, "weights": {"canary": weight}, "currentStepIndex": step, **kw}
    )


def canary(name: str = "web", router: dict[str, Any] | None = None) -> Rollout:
    doc = rollout_doc(steps=[{"setWeight": 25}, {"pause": {}}], router=router)
    doc["metadata"]["name"] = name
    return parse_rollout(doc)


def blue_green() -> Rollout:
    return parse_rollout(rollout_doc(blue_green={}))


def families(t: Telemetry) -> dict[str, Any]:
    text = generate_latest(t.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(t: Telemetry, name: str, **labels: str) -> float | None:
    return t.registry.get_sample_value(name, labels)


def series(t: Telemetry, rollout: str) -> list[str]:
    """Every sample carrying ``rollout``'s label, by name."""
    return [
        s.name
        for family in t.registry.collect()
        for s in family.samples
        if s.labels.get("rollout") == rollout
    ]


def test_metric_names_types_and_labels_are_the_issues() -> None:
    t = Telemetry()
    t.observe(canary(), None, status("Progressing", 25, 0))
    t.analysis_verdicts.labels("successful")  # a labelled counter shows once it has a child
    t.working("sluice.dev")
    with t.timed():
        pass
    fams = families(t)
    # (family name, type, sample name, labels) as Prometheus reads the exposition
    expected = {
        "sluice_rollout_info": ("gauge", "sluice_rollout_info"),
        "sluice_rollout_weight": ("gauge", "sluice_rollout_weight"),
        "sluice_rollout_step": ("gauge", "sluice_rollout_step"),
        "sluice_rollout_phase_transitions": ("counter", "sluice_rollout_phase_transitions_total"),
        "sluice_reconcile_duration_seconds": ("histogram", "sluice_reconcile_duration_seconds_sum"),
        "sluice_reconcile_errors": ("counter", "sluice_reconcile_errors_total"),
        "sluice_analysis_verdicts": ("counter", "sluice_analysis_verdicts_total"),
        "sluice_notifications": ("counter", "sluice_notifications_total"),
        "sluice_controller_paused": ("gauge", "sluice_controller_paused"),
    }
    for family, (kind, sample) in expected.items():
        assert fams[family].type == kind, family
        assert sample in {s.name for s in fams[family].samples}, family
    info = fams["sluice_rollout_info"].samples[0].labels
    assert set(info) == {"namespace", "rollout", "phase", "strategy", "router"}
    assert set(fams["sluice_analysis_verdicts"].samples[0].labels) == {"result"}
    # every result exported from the start, at 0
    assert {s.labels["result"] for s in fams["sluice_notifications"].samples} == {
        "sent",
        "failed",
        "dropped",
        "rate_limited",
    }
    # nothing else (prometheus_client's *_created timestamps aside): a private registry has no
    # process or platform collectors
    assert {n for n in fams if not n.endswith("_created")} == set(expected)


def test_observe_records_phase_strategy_router_weight_and_step() -> None:
    t = Telemetry()
    t.observe(canary(router=ISTIO), None, status("Paused", 25, 1))
    assert (
        value(
            t,
            "sluice_rollout_info",
            namespace="ns",
            rollout="web",
            phase="Paused",
            strategy="canary",
            router="istio",
        )
        == 1.0
    )
    assert value(t, "sluice_rollout_weight", namespace="ns", rollout="web") == 25.0
    assert value(t, "sluice_rollout_step", namespace="ns", rollout="web") == 1.0

    bg = Telemetry()
    bg.observe(blue_green(), None, status("Healthy"))
    labels = {"namespace": "ns", "rollout": "web", "phase": "Healthy"}
    assert value(bg, "sluice_rollout_info", **labels, strategy="blueGreen", router="none") == 1
    assert value(bg, "sluice_rollout_step", namespace="ns", rollout="web") == 0.0


def test_info_keeps_one_series_per_rollout() -> None:
    t = Telemetry()
    r = canary()
    t.observe(r, None, status("Progressing", 25, 0))
    t.observe(r, status("Progressing"), status("Paused", 25, 1))
    info = [s for s in series(t, "web") if s == "sluice_rollout_info"]
    assert len(info) == 1
    assert value(t, "sluice_rollout_info", namespace="ns", rollout="web", phase="Paused",
                 strategy="canary", router="none") == 1.0  # fmt: skip


def transitions(t: Telemetry, rollout: str = "web") -> dict[tuple[str, str], float]:
    out = {}
    for family in t.registry.collect():
        for s in family.samples:
            if (
                s.name == "sluice_rollout_phase_transitions_total"
                and s.labels["rollout"] == rollout
            ):
                out[(s.labels["from_phase"], s.labels["to_phase"])] = s.value
    return out


def test_transitions_are_counted_once_per_change() -> None:
    t = Telemetry()
    r = canary()
    t.observe(r, None, status("Progressing"))
    t.observe(r, status("Progressing"), status("Progressing", 25))  # no change: no count
    t.observe(r, status("Progressing", 25), status("Paused", 25, 1))
    t.observe(r, status("Paused", 25, 1), status("Paused", 25, 1))
    assert transitions(t) == {("None", "Progressing"): 1.0, ("Progressing", "Paused"): 1.0}
    # a second pause later counts again: it is another change
    t.observe(r, status("Paused"), status("Progressing", 75, 2))
    t.observe(r, status("Progressing", 75, 2), status("Paused", 75, 3))
    assert transitions(t)[("Progressing", "Paused")] == 2.0
    assert transitions(t)[("Paused", "Progressing")] == 1.0


def test_a_restarted_controller_does_not_recount_the_current_phase() -> None:
    t = Telemetry()  # fresh memory, status already Paused in the cluster
    t.observe(canary(), status("Paused", 25, 1), status("Paused", 25, 1))
    assert transitions(t) == {}
    assert value(t, "sluice_rollout_weight", namespace="ns", rollout="web") == 25.0


def runs(*phases: str) -> dict[str, Any]:
    return {
        "analysisRuns": [
            {"name": f"web-run-{i}", "kind": "step", "phase": p} for i, p in enumerate(phases)
        ]
    }


def test_analysis_verdicts_are_counted_when_a_run_finishes() -> None:
    t = Telemetry()
    r = canary()
    t.observe(r, status("Progressing", **runs("Running")), status("Progressing", **runs("Running")))
    assert (
        value(t, "sluice_analysis_verdicts_total", result="successful") == 0.0
    )  # exported from the start, not yet counted
    t.observe(r, status("Progressing", **runs("Running")), status("Paused", **runs("Successful")))
    t.observe(r, status("Paused", **runs("Successful")), status("Paused", **runs("Successful")))
    assert value(t, "sluice_analysis_verdicts_total", result="successful") == 1.0
    t.observe(
        r,
        status("Paused", **runs("Successful", "Running", "Running")),
        status("Degraded", **runs("Successful", "Failed", "Error")),
    )
    assert value(t, "sluice_analysis_verdicts_total", result="successful") == 1.0
    assert value(t, "sluice_analysis_verdicts_total", result="failed") == 1.0
    assert value(t, "sluice_analysis_verdicts_total", result="error") == 1.0


def test_an_invalid_rollout_shows_degraded_and_counts_the_change_once() -> None:
    t = Telemetry()
    t.observe(canary(), None, status("Healthy"))
    t.invalid("ns", "web", status("Healthy"), status("Degraded"))
    t.invalid("ns", "web", status("Degraded"), status("Degraded"))
    assert transitions(t)[("Healthy", "Degraded")] == 1.0
    labels = {"namespace": "ns", "rollout": "web", "strategy": "unknown", "router": "unknown"}
    assert value(t, "sluice_rollout_info", **labels, phase="Degraded") == 1.0
    assert series(t, "web").count("sluice_rollout_info") == 1


def test_forget_removes_every_series_of_that_rollout_only() -> None:
    t = Telemetry()
    t.observe(canary("web"), None, status("Progressing", 25, 0))
    t.observe(canary("web"), status("Progressing"), status("Paused", 25, 1))
    t.observe(canary("shop"), None, status("Healthy"))
    assert set(series(t, "web")) == {
        "sluice_rollout_info",
        "sluice_rollout_weight",
        "sluice_rollout_step",
        "sluice_rollout_phase_transitions_total",
        "sluice_rollout_phase_transitions_created",
    }
    t.forget("ns", "web")
    assert series(t, "web") == []
    assert "sluice_rollout_info" in series(t, "shop")
    t.forget("ns", "web")  # twice, or never seen: nothing to do
    t.forget("ns", "never")
    # a Rollout recreated under the same name starts afresh
    t.observe(canary("web"), None, status("Progressing"))
    assert transitions(t) == {("None", "Progressing"): 1.0}


def test_timed_observes_a_duration_and_lets_failures_through() -> None:
    t = Telemetry()
    with t.timed():
        pass
    with pytest.raises(RuntimeError), t.timed():
        raise RuntimeError("boom")
    assert value(t, "sluice_reconcile_duration_seconds_count") == 2.0
    assert value(t, "sluice_reconcile_errors_total") == 0.0  # counted by the caller, once


def test_a_failed_reconcile_counts_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the Controller: the failure raised inside the timed block used to count twice."""
    t = Telemetry()
    settings = Settings(standalone=True, metrics_port=None, liveness_port=None)
    controller = operator.Controller(
        kubernetes.client.ApiClient(), settings, t, verdicts=ScriptedVerdicts(time.time)
    )
    monkeypatch.setattr(controller, "_get", lambda ns, name: rollout_doc())

    def fail(*_: Any, **__: Any) -> Any:
        raise kubernetes.client.ApiException(status=500, reason="injected")

    monkeypatch.setattr(operator, "cycle", fail)
    controller.run("ns", "web")  # never raises: logged, counted, retried by the timer
    assert value(t, "sluice_reconcile_errors_total") == 1.0
    assert value(t, "sluice_reconcile_duration_seconds_count") == 1.0
    controller.run("ns", "web")
    assert value(t, "sluice_reconcile_errors_total") == 2.0


def test_a_paused_replica_drops_its_rollout_series_and_says_it_is_paused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the Controller, as kopf's pause reaches it (rollouts.kopf_pause): both replicas
    serve /metrics and dashboards take ``max by`` over them, so a paused replica must not keep
    the last weight it saw; on resume it reads every Rollout it knew afresh."""
    t = Telemetry()
    settings = Settings(standalone=True, metrics_port=None, liveness_port=None)
    controller = operator.Controller(
        kubernetes.client.ApiClient(), settings, t, verdicts=ScriptedVerdicts(time.time)
    )
    monkeypatch.setattr(controller, "_get", lambda ns, name: rollout_doc())
    monkeypatch.setattr(operator, "cycle", lambda *_, **__: 1 / 0)
    controller.run("ns", "web")  # a Rollout this replica knows
    t.observe(canary("web"), None, status("Progressing", 25, 0))
    t.observe(canary("shop"), None, status("Paused", 50, 1))
    assert value(t, "sluice_controller_paused", peering="sluice.dev") == 0.0

    controller.peering_paused(True, ("sluice.dev@None",))
    assert value(t, "sluice_controller_paused", peering="sluice.dev") == 1.0
    assert series(t, "web") == [] and series(t, "shop") == []
    assert controller.queue.paused

    controller.peering_paused(False)
    assert value(t, "sluice_controller_paused", peering="sluice.dev") == 0.0
    assert not controller.queue.paused
    assert controller.state_sizes()["stale"] == 1  # its next reconcile reads it by GET


def test_a_reconcile_ending_after_the_pause_brings_no_series_back() -> None:
    """A reconcile that began before kopf paused the replica ends after it: its phase change and
    verdict still count (they happened), but the Rollout's gauges stay dropped until the replica
    works again, so ``max by`` over replicas is not held by what this one saw last."""
    t = Telemetry()
    t.observe(canary("web"), None, status("Progressing", 25, 0))
    t.pausing("sluice.dev")
    t.observe(
        canary("web"),
        status("Progressing", 25, 0, **runs("Running")),
        status("Paused", 50, 1, **runs("Successful")),
    )
    t.invalid("ns", "bad", None)
    assert "sluice_rollout_info" not in series(t, "web")
    assert "sluice_rollout_weight" not in series(t, "web")
    assert "sluice_rollout_info" not in series(t, "bad")
    changes = dict(namespace="ns", rollout="web", from_phase="Progressing", to_phase="Paused")
    assert value(t, "sluice_rollout_phase_transitions_total", **changes) == 1.0
    assert value(t, "sluice_analysis_verdicts_total", result="successful") == 1.0

    t.working("sluice.dev")
    t.observe(canary("web"), status("Paused", 50, 1), status("Paused", 50, 1))
    assert value(t, "sluice_rollout_weight", namespace="ns", rollout="web") == 50.0
