"""A Job's outcome from its status, and its deterministic name (restarts find the same Job)."""

from __future__ import annotations

from analysis.providers.job import job_name, outcome


def test_complete_and_failed_conditions_decide_running_does_not() -> None:
    assert outcome({"status": {"active": 1}}) is None
    assert outcome({}) is None
    assert outcome({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) == (
        True,
        "succeeded",
    )
    failed = {
        "type": "Failed",
        "status": "True",
        "reason": "DeadlineExceeded",
        "message": "Job was active longer than specified deadline",
    }
    assert outcome({"status": {"conditions": [failed]}}) == (
        False,
        "failed (DeadlineExceeded: Job was active longer than specified deadline)",
    )
    # a condition that is not True decides nothing
    assert outcome({"status": {"conditions": [{**failed, "status": "False"}]}}) is None


def test_names_are_stable_unique_per_window_and_valid_dns_labels() -> None:
    run = "a-very-long-rollout-name-abcdef0123-step12-attempt3"
    a = job_name(run, "conformance-suite", 1000.0)
    assert a == job_name(run, "conformance-suite", 1000.0)
    assert a != job_name(run, "conformance-suite", 1010.0)
    assert len(a) <= 63 and a[0].isalnum() and a[-1].isalnum()
