"""The dashboard's sentences, from views built by the CLI's own view builder."""

from __future__ import annotations

from typing import Any

from rollouts.cli.dashboard.app import Filter, host_name
from rollouts.cli.dashboard.words import headline, metric_words
from rollouts.cli.rollout_view import build_view


def doc(status: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"strategy": {"canary": {"steps": steps or [{"setWeight": 25}, {"pause": {}}]}}},
        "status": status,
    }


FAILED_METRIC = {
    "name": "error-rate",
    "phase": "Failed",
    "method": "sequential-poisson",
    "outcome": "reject",
    "estimate": 28.4,
    "interval": [8.41, None],
    "eValue": 1.06e41,
    "threshold": 20,
    "events": 204,
    "measurements": 2,
}


def test_an_abort_for_failed_analysis_in_words() -> None:
    view = build_view(
        doc(
            {
                "phase": "Degraded",
                "stableRevision": "aaa",
                "currentRevision": "bbb",
                "abort": {
                    "reason": "AnalysisFailed",
                    "message": "step 2 analysis web-bbb-step1: metric 'error-rate' failed",
                    "time": "2026-01-01T00:00:00Z",
                    "revision": "bbb",
                },
                "analysisRuns": [
                    {"name": "web-bbb-step1", "phase": "Failed", "metrics": [FAILED_METRIC]}
                ],
            }
        )
    )
    assert headline(view) == (
        "Aborted: analysis found the new revision worse than the stable one. All traffic went "
        "back to the stable revision aaa; the rollout stays here until a new revision or a retry."
    )
    [metric] = view.runs[0].metrics
    words = metric_words(metric)
    assert words.startswith("Failed: the evidence against the canary (e-value 1.06e+41 against")
    assert "estimate 28.4 (confidence interval: at least 8.41)" in words
    assert "204 events counted over 2 measurements" in words
    assert "1/20" in words


def test_a_pause_that_waits_for_a_person() -> None:
    view = build_view(
        doc(
            {
                "phase": "Paused",
                "stableRevision": "aaa",
                "currentRevision": "bbb",
                "currentStepIndex": 1,
                "pauseConditions": [
                    {"reason": "PausedByUser", "startTime": "2026-01-01T00:00:00Z"}
                ],
            }
        )
    )
    assert view.waits_for_person
    assert headline(view) == "Paused: paused by a person (a pause request). It waits for a person."


def test_promoted_after_analysis_passed() -> None:
    passed = {**FAILED_METRIC, "phase": "Successful", "outcome": "accept", "eValue": 0.5}
    view = build_view(
        doc(
            {
                "phase": "Healthy",
                "stableRevision": "bbb",
                "currentRevision": "bbb",
                "analysisRuns": [{"name": "r", "phase": "Successful", "metrics": [passed]}],
            }
        )
    )
    assert headline(view) == (
        "Healthy: revision bbb is stable and takes all traffic. Promoted after analysis showed "
        "it within tolerance: error-rate."
    )
    assert metric_words(view.runs[0].metrics[0]).startswith("Passed: the canary is within")


def test_conditions_reach_the_view() -> None:
    view = build_view(
        doc(
            {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "AnalysisFailed",
                        "message": "aborted:  step 2",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ]
            }
        )
    )
    [c] = view.conditions
    assert (c.type, c.status, c.reason, c.message) == (
        "Ready",
        "False",
        "AnalysisFailed",
        "aborted: step 2",
    )
    assert c.last_transition is not None and c.last_transition.year == 2026


def test_the_list_filter() -> None:
    view = build_view(doc({"phase": "Paused", "message": "Paused at step 2"}))
    assert Filter().keeps(view)
    assert Filter(text="SHOP/we").keeps(view) and Filter(text="step 2").keeps(view)
    assert not Filter(text="cart").keeps(view)
    assert Filter(namespace="shop", phase="Paused").keeps(view)
    assert not Filter(namespace="other").keeps(view)
    assert not Filter(phase="Healthy").keeps(view)
    assert not Filter(waiting=True).keeps(view)  # no pause condition: nobody is waited for


def test_host_names() -> None:
    assert host_name("127.0.0.1:7070") == "127.0.0.1"
    assert host_name("LOCALHOST") == "localhost"
    assert host_name("[::1]:7070") == "::1"
    assert host_name("rebound.example:7070") == "rebound.example"
