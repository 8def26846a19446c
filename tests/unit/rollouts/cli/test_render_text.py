"""The plain text of ``sluice get rollout`` for hand-built views, and the small formatters.

Views are built directly (no cluster), so each test states the situation it renders: a canary
mid-steps with analysis, a blue-green waiting in preview, an aborted canary, a paused one.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from analysis.stats.evidence import Evidence, Outcome
from rollouts.cli.render_text import age, render_text, score_text, sparkline, weight_bar
from rollouts.cli.rollout_view import (
    AbortView,
    EventView,
    MetricView,
    PauseView,
    RolloutView,
    RunView,
    SlotView,
    StepView,
    build_view,
    measurement_value,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def metric(
    name: str = "error-rate",
    *,
    method: str = "sequential-rate-ratio",
    outcome: str = "continue",
    estimate: float | None = 1.07,
    interval: tuple[float, float] | None = (0.62, 1.9),
    e_value: float | None = 2.31,
    statistic: float | None = None,
    threshold: float | None = 40.0,
    events: int = 118,
    **kw: object,
) -> MetricView:
    """A metric as status carries it: a sequential test's e-value and threshold in log space."""
    sequential = e_value is not None
    evidence = Evidence(
        method=method,
        outcome=Outcome(outcome),
        estimate=estimate,
        lower=None if interval is None else interval[0],
        upper=None if interval is None else interval[1],
        log_e_value=math.log(e_value) if e_value is not None else None,
        log_threshold=math.log(threshold) if sequential and threshold is not None else None,
        statistic=statistic,
        threshold=None if sequential else threshold,
        events=events,
    )
    fields: dict[str, object] = dict(
        name=name,
        phase="Running",
        evidence=evidence,
        measurements=4,
        dry_run=False,
        message="",
        trend=(1.0, 2.0, None, 4.0),
    )
    fields.update(kw)
    return MetricView(**fields)  # type: ignore[arg-type]


def canary_view(**kw: object) -> RolloutView:
    fields: dict[str, object] = dict(
        name="web",
        namespace="shop",
        strategy="canary",
        phase="Progressing",
        message="analysis running",
        generation=2,
        observed_generation=2,
        current_revision="bbb222",
        stable_revision="aaa111",
        step="1/4",
        steps=(
            StepView(1, "setWeight 25%", "done"),
            StepView(2, "analysis errors", "current"),
            StepView(3, "setWeight 75%", "pending"),
            StepView(4, "pause", "pending"),
        ),
        weight=25,
        desired_weight=25,
        weight_verified=None,
        services=(("stable", "web"), ("canary", "web-canary")),
        active_slot=None,
        preview_slot=None,
        slots=(
            SlotView("a", "stable", "aaa111", "web:1", 3, 3, exists=True),
            SlotView("b", "canary", "bbb222", "web:2", 0, 1, exists=True),
        ),
        pauses=(),
        waits_for_person=False,
        abort=None,
        runs=(
            RunView(
                "web-bbb222-step2",
                "step",
                1,
                "Running",
                "",
                (
                    metric(),
                    metric(
                        "p99",
                        phase="Successful",
                        method="argo-threshold",
                        outcome="accept",
                        estimate=0.231,
                        interval=None,
                        e_value=None,
                        statistic=0.231,
                        threshold=0.5,
                        events=6,
                        trend=(0.2, 0.2),
                    ),
                ),
            ),
        ),
        events=(
            EventView("Normal", "RolloutStarted", "rolling out revision bbb222", ago(95), 1),
            EventView("Normal", "StepCompleted", "step 1/4 (setWeight 25%) done", ago(12), 1),
        ),
        last_request=None,
    )
    fields.update(kw)
    return RolloutView(**fields)  # type: ignore[arg-type]


def section(text: str, title: str) -> list[str]:
    """The lines of one section (from its title to the next blank line)."""
    lines = text.splitlines()
    start = lines.index(title)
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start + 1 : end]


# ---------------------------------------------------------------------------- whole views


def test_canary_mid_steps() -> None:
    text = render_text(canary_view(), NOW)
    lines = text.splitlines()
    assert lines[0] == "Rollout shop/web (canary)"
    assert "  Phase:     Progressing: analysis running" in lines
    assert "  Revision:  bbb222 (stable aaa111)" in lines
    assert "  Weight:    [█████░░░░░░░░░░░░░░░] 25% on the canary (desired 25%)" in lines
    assert "  Step:      1/4" in lines
    assert section(text, "Steps") == [
        "  ✓  1.  setWeight 25%",
        "  ▶  2.  analysis errors  now",
        "     3.  setWeight 75%",
        "     4.  pause",
    ]
    assert section(text, "Slots") == [
        "  SLOT  ROLE    REVISION  IMAGE  READY",
        "  a     stable  aaa111    web:1  3/3",
        "  b     canary  bbb222    web:2  0/1",
    ]
    analysis = section(text, "Analysis")
    assert analysis[0] == "  web-bbb222-step2: step (step 2), Running"
    assert analysis[1].split() == [
        "METRIC",
        "PHASE",
        "OUTCOME",
        "ESTIMATE",
        "INTERVAL",
        "SCORE",
        "EVENTS",
        "TREND",
    ]
    assert analysis[2] == (
        "    error-rate  Running     continue  1.07      [0.62, 1.9]  e=2.31 / 40       118     ▁▃ █"
    )
    assert analysis[3] == (
        "    p99         Successful  accept    0.231     -            stat=0.231 / 0.5  6       ▄▄"
    )
    assert section(text, "Events") == [
        "  1m35s ago  Normal  RolloutStarted  rolling out revision bbb222",
        "  12s ago    Normal  StepCompleted   step 1/4 (setWeight 25%) done",
    ]
    assert "Paused:" not in text and "Aborted:" not in text
    assert all(line == line.rstrip() for line in lines), "no trailing blanks"
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_canary_moving_to_a_new_weight() -> None:
    text = render_text(canary_view(weight=25, desired_weight=75, weight_verified=False), NOW)
    assert (
        "  Weight:    [█████▒▒▒▒▒▒▒▒▒▒░░░░░] 25% on the canary, moving to 75%, "
        "not yet verified at the router"
    ) in text.splitlines()


def test_blue_green_in_preview() -> None:
    view = canary_view(
        strategy="blueGreen",
        phase="Paused",
        message="preview ready; waiting to promote",
        step="preview",
        steps=(),
        weight=0,
        desired_weight=None,
        services=(("active", "web"), ("preview", "web-preview")),
        active_slot="a",
        preview_slot="b",
        slots=(
            SlotView("a", "active", "aaa111", "web:1", 4, 4, exists=True),
            SlotView("b", "preview", "bbb222", "web:2", 4, 4, exists=True),
        ),
        pauses=(PauseView("BlueGreenPause", ago(30)),),
        waits_for_person=True,
        runs=(),
    )
    text = render_text(view, NOW)
    lines = text.splitlines()
    assert lines[0] == "Rollout shop/web (blue-green)"
    assert "  Traffic:   active slot a (service web), preview slot b (service web-preview)" in lines
    assert (
        "  Paused:    BlueGreenPause (30s ago); waits for a person: sluice promote web -n shop"
        in lines
    )
    assert "Weight:" not in text and "Steps" not in lines and "Analysis" not in lines
    assert section(text, "Slots")[1:] == [
        "  a     active   aaa111    web:1  4/4",
        "  b     preview  bbb222    web:2  4/4",
    ]


def test_aborted_canary() -> None:
    view = canary_view(
        phase="Degraded",
        message="aborted: error-rate failed",
        steps=(
            StepView(1, "setWeight 25%", "done"),
            StepView(2, "analysis errors", "current"),
            StepView(3, "pause", "pending"),
        ),
        weight=0,
        desired_weight=0,
        abort=AbortView("AnalysisFailed", "error-rate: e-value 52 >= 40", ago(7200), "bbb222"),
        slots=(
            SlotView("a", "stable", "aaa111", "web:1", 4, 4, exists=True),
            SlotView("b", None, "bbb222", None, 0, 0, exists=False),
        ),
    )
    text = render_text(view, NOW)
    assert (
        "  Aborted:   AnalysisFailed revision bbb222 (2h ago): error-rate: e-value 52 >= 40"
        in text.splitlines()
    )
    assert "  ✗  2.  analysis errors  aborted here" in section(text, "Steps")
    assert "  b     -       bbb222    -      gone" in section(text, "Slots")
    assert "[░░░░░░░░░░░░░░░░░░░░] 0% on the canary (desired 0%)" in text


def test_paused_by_a_person() -> None:
    view = canary_view(
        phase="Paused",
        message="paused by request pause@p1",
        pauses=(PauseView("CanaryPauseStep", ago(125)), PauseView("PausedByUser", ago(61))),
        waits_for_person=True,
    )
    text = render_text(view, NOW)
    assert (
        "  Paused:    CanaryPauseStep (2m5s ago), PausedByUser (1m1s ago); "
        "waits for a person: sluice resume web -n shop"
    ) in text.splitlines()
    assert "  ▶  2.  analysis errors  paused here" in section(text, "Steps")


def test_ascii_only() -> None:
    text = render_text(canary_view(weight=25, desired_weight=50), NOW, unicode=False)
    assert text.isascii()
    assert "[#####+++++..........]" in text
    assert "  *  1.  setWeight 25%" in text and "  >  2.  analysis errors  now" in text


def test_a_spec_the_controller_has_not_seen_is_said() -> None:
    text = render_text(canary_view(generation=3, observed_generation=2), NOW)
    assert "  Spec:      generation 3 not yet seen by the controller (observed 2)" in text


def test_metric_messages_and_dry_runs() -> None:
    run = RunView(
        "r",
        "background",
        None,
        "Running",
        "",
        (metric(dry_run=True, message="insufficient evidence: no data"),),
    )
    text = render_text(canary_view(runs=(run,)), NOW)
    analysis = section(text, "Analysis")
    assert analysis[0] == "  r: background, Running"
    assert analysis[2].startswith("    error-rate (dry run)  Running")
    assert analysis[-1] == "    error-rate: insufficient evidence: no data"


def test_no_slots_and_no_events_yet() -> None:
    text = render_text(canary_view(slots=(), events=(), runs=()), NOW)
    assert section(text, "Slots") == ["  (none yet)"]
    assert section(text, "Events") == ["  (none)"]


def test_the_text_depends_on_the_clock_only_through_ages() -> None:
    view = canary_view()
    later = render_text(view, NOW + timedelta(seconds=30))
    assert later != render_text(view, NOW)

    def words(text: str) -> list[list[str]]:  # the age column's padding follows its width
        return [line.split() for line in text.splitlines()]

    assert words(later.replace("2m5s", "1m35s").replace("42s", "12s")) == words(
        render_text(view, NOW)
    )


# ------------------------------------------------------------------------------ formatters


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (125, "2m5s"),
        (600, "10m"),
        (659, "10m"),
        (3600, "1h"),
        (3660, "1h1m"),
        (86400 + 3600, "1d1h"),
        (8 * 86400 + 3600, "8d"),
        (-5, "0s"),  # a clock slightly behind the server's
    ],
)
def test_age(seconds: int, text: str) -> None:
    assert age(ago(seconds), NOW) == text


def test_age_unknown() -> None:
    assert age(None, NOW) == "?"


def test_sparkline_scales_between_its_own_min_and_max() -> None:
    assert sparkline([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == "▁▂▃▄▅▆▇█"
    assert sparkline([10.0, 17.0]) == "▁█"
    assert sparkline([5.0, 5.0, 5.0]) == "▄▄▄"  # flat: the middle, not the floor
    assert sparkline([1.0, None, 3.0]) == "▁ █"  # a missing measurement is a gap
    assert sparkline([None, None]) == "  "
    assert sparkline([]) == ""
    assert sparkline([0.0, 7.0], unicode=False) == "_@"


def test_weight_bar() -> None:
    assert weight_bar(0, 0) == "░" * 20
    assert weight_bar(100, 100) == "█" * 20
    assert weight_bar(50, 75, width=8) == "████▒▒░░"
    assert weight_bar(75, 25, width=4) == "███░"  # desired below actual: only the actual shows
    assert weight_bar(10, None, width=10, unicode=False) == "#........."


def test_score_text() -> None:
    assert score_text(metric(e_value=2.31, threshold=40.0)) == "e=2.31 / 40"
    assert score_text(metric(e_value=None, statistic=0.95, threshold=None)) == "stat=0.95"
    assert score_text(metric(e_value=None, statistic=None)) == "-"


# ---------------------------------------------------------------------------- the builder


def rollout_doc(**status: object) -> dict[str, object]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "generation": 2},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:2"}]},
            },
            "strategy": {
                "canary": {
                    "stableService": "web",
                    "canaryService": "web-canary",
                    "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}],
                }
            },
        },
        "status": {
            "observedGeneration": 2,
            "phase": "Paused",
            "currentRevision": "bbb",
            "stableRevision": "aaa",
            "currentStepIndex": 1,
            "step": "1/4",
            "weights": {"canary": 20},
            "slots": [
                {"name": "a", "role": "stable", "revision": "aaa", "replicas": 3},
                {"name": "b", "role": "canary", "revision": "bbb", "replicas": 1},
            ],
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-03-01T11:59:00Z"}],
            **status,
        },
    }


def deployment(
    slot: str, rollout: str = "web", ready: int = 1, image: str = "web:2"
) -> dict[str, object]:
    return {
        "metadata": {
            "name": f"{rollout}-{slot}",
            "labels": {
                "sluice.dev/rollout": rollout,
                "sluice.dev/slot": slot,
                "sluice.dev/revision": "r" + slot,
            },
        },
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": image}]}}},
        "status": {"readyReplicas": ready},
    }


def event(name: str, reason: str, at: str, rv: int, kind: str = "Rollout") -> dict[str, object]:
    return {
        "involvedObject": {"kind": kind, "name": name},
        "reason": reason,
        "message": f"{reason}  happened\n",
        "type": "Normal",
        "lastTimestamp": at,
        "metadata": {"resourceVersion": str(rv)},
    }


def test_build_view_reads_steps_weights_and_pauses() -> None:
    view = build_view(rollout_doc())
    assert [s.state for s in view.steps] == ["done", "current", "pending", "pending"]
    assert view.desired_weight == 20 and view.weight == 20
    assert view.waits_for_person  # a pause step with no duration
    assert view.pauses == (PauseView("CanaryPauseStep", datetime(2026, 3, 1, 11, 59, tzinfo=UTC)),)
    assert view.services == (("stable", "web"), ("canary", "web-canary"))


def test_desired_weight_follows_the_last_set_weight_reached() -> None:
    assert build_view(rollout_doc(currentStepIndex=2)).desired_weight == 60
    assert build_view(rollout_doc(currentStepIndex=3)).desired_weight == 60
    assert build_view(rollout_doc(currentStepIndex=4)).desired_weight == 100  # promoting
    settled = build_view(rollout_doc(currentRevision="aaa"))
    assert settled.desired_weight == 0 and {s.state for s in settled.steps} == {"done"}
    aborted = rollout_doc(abort={"reason": "AbortedByUser", "message": "m", "revision": "bbb"})
    assert build_view(aborted).desired_weight == 0


def test_build_view_takes_slots_from_their_own_deployments_only() -> None:
    deps = [
        deployment("a", ready=2, image="web:1"),
        deployment("b"),
        deployment("a", rollout="shop"),
    ]
    view = build_view(rollout_doc(), deps)
    assert [(s.name, s.role, s.image, s.ready, s.desired) for s in view.slots] == [
        ("a", "stable", "web:1", 2, 2),
        ("b", "canary", "web:2", 1, 2),
    ]
    gone = build_view(rollout_doc(), [deployment("a")])
    assert [(s.name, s.exists) for s in gone.slots] == [("a", True), ("b", False)]


def test_build_view_keeps_the_rollouts_last_events_in_order() -> None:
    events = [event("web", f"E{i}", "2026-03-01T11:00:00Z", rv=100 + i) for i in (3, 1, 2)] + [
        event("web", "Later", "2026-03-01T11:30:00Z", rv=50),
        event("web", "Old", "2026-03-01T10:00:00Z", rv=999),
        event("web", "Older", "2026-03-01T09:00:00Z", rv=998),
        event("shop", "Other", "2026-03-01T11:40:00Z", rv=1),
        event("web", "AboutAPod", "2026-03-01T11:40:00Z", rv=2, kind="Pod"),
    ]
    view = build_view(rollout_doc(), events=events)
    assert [e.reason for e in view.events] == ["Old", "E1", "E2", "E3", "Later"]
    assert view.events[0].message == "Old happened"  # one line, spaces collapsed


def test_build_view_reads_trends_from_the_analysis_runs() -> None:
    status = {
        "analysisRuns": [
            {
                "name": "web-bbb-bg",
                "kind": "background",
                "phase": "Running",
                "metrics": [
                    {
                        "name": "errors",
                        "evidence": {
                            "method": "sequential-rate-ratio",
                            "outcome": "continue",
                            "logEValue": math.log(3.5),
                            "logThreshold": math.log(40),
                            "lower": 0.5,
                            "upper": 2,
                        },
                    }
                ],
            }
        ]
    }
    run_doc = {
        "metadata": {"name": "web-bbb-bg", "labels": {"sluice.dev/rollout": "web"}},
        "status": {
            "metrics": [
                {
                    "name": "errors",
                    "measurements": [
                        {
                            "phase": "Successful",
                            "values": {
                                "canaryEvents": 2,
                                "canaryTotal": 100,
                                "baselineEvents": 1,
                                "baselineTotal": 100,
                            },
                        },
                        {"phase": "Error"},
                        {
                            "phase": "Successful",
                            "values": {
                                "canaryEvents": 1,
                                "canaryTotal": 100,
                                "baselineEvents": 1,
                                "baselineTotal": 100,
                            },
                        },
                    ],
                }
            ]
        },
    }
    other = {
        **run_doc,
        "metadata": {"name": "web-bbb-bg", "labels": {"sluice.dev/rollout": "shop"}},
    }
    view = build_view(rollout_doc(**status), runs=[other, run_doc])
    (m,) = view.runs[0].metrics
    assert m.trend == (2.0, None, 1.0)
    assert m.evidence is not None and m.evidence.e_value() == pytest.approx(3.5)
    assert m.evidence.interval == (0.5, 2.0) and m.evidence.e_threshold() == pytest.approx(40)
    assert build_view(rollout_doc(**status), runs=[other]).runs[0].metrics[0].trend == ()


@pytest.mark.parametrize(
    ("measurement", "value"),
    [
        ({"value": 0.25}, 0.25),
        (
            {
                "values": {
                    "canaryEvents": 3,
                    "canaryTotal": 100,
                    "baselineEvents": 1,
                    "baselineTotal": 50,
                }
            },
            1.5,
        ),
        (
            {
                "values": {
                    "canaryEvents": 3,
                    "canaryTotal": 100,
                    "baselineEvents": 0,
                    "baselineTotal": 50,
                }
            },
            0.03,
        ),
        ({"values": {"canary": 3.0, "baseline": 2.0}}, 1.5),
        ({"values": {"canary": 3.0, "baseline": 0.0}}, 3.0),
        ({"phase": "Error"}, None),
    ],
)
def test_measurement_value(measurement: dict[str, object], value: float | None) -> None:
    assert measurement_value(measurement) == (pytest.approx(value) if value is not None else None)


def test_an_invalid_spec_still_renders() -> None:
    doc = rollout_doc()
    doc["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 150}, {}]  # type: ignore[index]
    view = build_view(doc)
    assert [s.text for s in view.steps] == ["setWeight", "(empty step)"]
    assert view.waits_for_person is False  # cannot say from an invalid spec; no indefinite pause
    assert "Rollout shop/web (canary)" in render_text(view, NOW)


def test_an_empty_rollout_renders() -> None:
    view = build_view({"metadata": {"name": "web", "namespace": "shop"}})
    text = render_text(view, NOW)
    assert text.splitlines()[:3] == [
        "Rollout shop/web (?)",
        "  Phase:     Unknown",
        "  Revision:  -",
    ]


def test_views_compare_by_value() -> None:
    """--watch prints a new block only when the view changes."""
    assert build_view(rollout_doc()) == build_view(rollout_doc())
    assert build_view(rollout_doc()) != build_view(rollout_doc(phase="Healthy"))
    assert replace(canary_view(), weight=30) != canary_view()


def test_a_status_newer_than_the_spec_is_not_flagged() -> None:
    """An observedGeneration above the generation (a recreated object) is no pending change."""
    assert "Spec:" not in render_text(canary_view(generation=1, observed_generation=2), NOW)
    assert "Spec:" in render_text(canary_view(generation=1, observed_generation=None), NOW)


def test_before_the_controller_reports_no_step_is_done() -> None:
    """A Rollout just applied has no status: nothing is done yet, so no step is ticked."""
    doc = rollout_doc()
    del doc["status"]
    assert {s.state for s in build_view(doc).steps} == {"pending"}
    healthy = rollout_doc(currentStepIndex=4, currentRevision="r1", stableRevision="r1")
    assert {s.state for s in build_view(healthy).steps} == {"done"}


def test_the_pod_model_behind_a_verdict_is_shown() -> None:
    """With pods as the sampling unit the tolerance actually tested is what a person needs to read
    the estimate against; without a pod model nothing is added."""
    plain = metric()
    assert plain.evidence is not None
    details = plain.evidence.details.model_copy(
        update={
            "tolerance": 1.1,
            "widened_tolerance": 1.545,
            "pod_spread": 0.196,
            "pod_spread_estimated": True,
            "canary_pods": 2.0,
            "baseline_pods": 10.0,
        }
    )
    pods = replace(plain, evidence=plain.evidence.model_copy(update={"details": details}))
    run = RunView("r", "step", 1, "Running", "", (pods,))
    analysis = section(render_text(canary_view(runs=(run,)), NOW), "Analysis")
    assert analysis[-1] == (
        "    error-rate: tolerance 1.1 widened to 1.54 for 2 canary pod(s), pod spread 0.196 "
        "(estimated from 10 baseline pods)"
    )
    run = RunView("r", "step", 1, "Running", "", (plain,))
    assert "widened" not in render_text(canary_view(runs=(run,)), NOW)
