"""AnalysisRun history: old revisions' finished runs are bounded per outcome, and nothing the
current revision or an in-flight analysis still needs is ever deleted."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analysis.api import AnalysisRun, parse_template
from analysis.providers.port import MetricProvider
from analysis.store.memory import MemoryAnalysisStore
from analysis.store.port import AnalysisRunStore
from rollouts.api.rollout import Rollout
from rollouts.api.validation import parse_rollout
from rollouts.engine.plan import StartAnalysis
from rollouts.verdicts.analysis_runs import RUN_HISTORY, AnalysisVerdicts, owner_of
from tests.support.rollouts import rollout_doc

STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"analysis": {"templates": [{"templateName": "success"}]}},
]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
METRIC = {
    "name": "success-rate",
    "kind": "value",
    "provider": {"prometheus": {"query": 'avg(up{app="web"})'}},
    "threshold": {"min": 0.99},
}
UNSUCCESSFUL = ("Failed", "Error", "Inconclusive", "Stopped")


def rollout(revision: str = "r9", attempt: int = 1, in_flight: tuple[str, ...] = ()) -> Rollout:
    doc = rollout_doc(steps=STEPS)
    doc["status"] = {
        "currentRevision": revision,
        "attempt": attempt,
        "analysisRuns": [
            {"name": n, "kind": "step", "stepIndex": 1, "phase": "Running"} for n in in_flight
        ],
    }
    return parse_rollout(doc)


def add(
    store: MemoryAnalysisStore,
    name: str,
    revision: str,
    phase: str | None,
    minute: int,
    attempt: int = 1,
) -> None:
    """A run of the Rollout ``web`` started ``minute`` minutes after T0 (phase None: no status,
    as a crash between the create and the status write leaves it)."""
    doc: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "rollout": "web",
            "revision": revision,
            "attempt": attempt,
            "kind": "step",
            "stepIndex": 1,
            "metrics": [METRIC],
        },
    }
    if phase is not None:
        doc["status"] = {"phase": phase, "startedAt": T0 + timedelta(minutes=minute)}
    store.create_run(owner_of(rollout()), AnalysisRun.model_validate(doc))


def no_provider(*_: Any) -> MetricProvider:
    raise AssertionError("pruning measures nothing")


def verdicts(store: AnalysisRunStore, history: int) -> AnalysisVerdicts:
    return AnalysisVerdicts(store, no_provider, lambda: T0.timestamp(), run_history=history)


def names(store: MemoryAnalysisStore) -> set[str]:
    return {name for _, name in store.runs}


def test_old_revisions_keep_the_newest_n_of_each_outcome() -> None:
    store = MemoryAnalysisStore()
    # start times deliberately out of name order: "newest" is by start time
    successes = {f"ok-{i}": minute for i, minute in enumerate([5, 1, 7, 3, 8, 2, 6, 4])}
    failures = {f"bad-{i}": minute for i, minute in enumerate([14, 11, 17, 13, 10, 16, 12])}
    for name, minute in successes.items():
        add(store, name, f"r{minute}", "Successful", minute)
    for i, (name, minute) in enumerate(failures.items()):
        add(store, name, f"r{minute}", UNSUCCESSFUL[i % len(UNSUCCESSFUL)], minute)

    deleted = verdicts(store, 3).prune(rollout())

    newest_ok = sorted(successes, key=successes.__getitem__)[-3:]
    newest_bad = sorted(failures, key=failures.__getitem__)[-3:]
    assert names(store) == {*newest_ok, *newest_bad}
    assert set(deleted) == (set(successes) | set(failures)) - names(store)
    assert len(deleted) == 15 - 6
    # a burst of successes does not push the kept failures out, nor the other way round
    assert verdicts(store, 3).prune(rollout()) == []


def test_every_unsuccessful_phase_counts_against_the_unsuccessful_limit() -> None:
    store = MemoryAnalysisStore()
    for minute, phase in enumerate(UNSUCCESSFUL):
        add(store, f"old-{phase.lower()}", "r1", phase, minute)
    add(store, "old-ok", "r1", "Successful", 0)
    verdicts(store, 1).prune(rollout())
    assert names(store) == {"old-stopped", "old-ok"}  # Stopped started last


def test_runs_of_the_current_revision_and_attempt_are_never_deleted() -> None:
    store = MemoryAnalysisStore()
    current = {f"now-{i}" for i in range(8)}
    for i, name in enumerate(sorted(current)):
        add(store, name, "r9", "Successful" if i % 2 else "Failed", i, attempt=2)
    add(store, "first-attempt", "r9", "Failed", 0, attempt=1)  # a retried revision's old attempt
    add(store, "older", "r8", "Successful", 0)
    deleted = verdicts(store, 0).prune(rollout("r9", attempt=2))
    assert names(store) == current
    assert sorted(deleted) == ["first-attempt", "older"]


def test_runs_still_running_or_listed_in_flight_are_never_deleted() -> None:
    store = MemoryAnalysisStore()
    add(store, "old-running", "r1", "Running", 0)
    add(store, "old-pending", "r1", "Pending", 0)
    add(store, "old-no-status", "r1", None, 0)
    # finished in the store, but the Rollout's status has not caught up: observe would
    # recreate it from scratch if it vanished
    add(store, "old-finishing", "r1", "Successful", 0)
    add(store, "old-done", "r1", "Successful", 1)
    verdicts(store, 0).prune(rollout(in_flight=("old-finishing",)))
    assert names(store) == {"old-running", "old-pending", "old-no-status", "old-finishing"}


def test_zero_history_keeps_only_the_current_revision() -> None:
    store = MemoryAnalysisStore()
    for rev in range(1, 6):
        add(store, f"r{rev}-ok", f"r{rev}", "Successful", rev)
        add(store, f"r{rev}-bad", f"r{rev}", "Error", rev)
    add(store, "r9-step", "r9", "Successful", 9)
    verdicts(store, 0).prune(rollout("r9"))
    assert names(store) == {"r9-step"}


def test_other_rollouts_runs_are_not_touched() -> None:
    store = MemoryAnalysisStore()
    add(store, "web-old", "r1", "Successful", 0)
    other = rollout_doc(steps=STEPS)
    other["metadata"]["name"] = "api"
    api = parse_rollout(other)
    run = AnalysisRun.model_validate(
        {
            "metadata": {"name": "api-old", "namespace": "ns"},
            "spec": {
                "rollout": "api",
                "revision": "r1",
                "kind": "step",
                "stepIndex": 1,
                "metrics": [METRIC],
            },
            "status": {"phase": "Successful", "startedAt": T0},
        }
    )
    store.create_run(owner_of(api), run)
    verdicts(store, 0).prune(rollout())
    assert names(store) == {"api-old"}


def success_template() -> Any:
    return parse_template(
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "success", "namespace": "ns"},
            "spec": {"metrics": [METRIC]},
        }
    )


START = StartAnalysis(name="web-r9-1-step-1", kind="step", templates=("success",), step_index=1)


def test_starting_a_run_prunes_and_the_new_run_stays() -> None:
    store = MemoryAnalysisStore()
    store.add_template(success_template())
    for rev in range(1, 4):
        add(store, f"r{rev}-ok", f"r{rev}", "Successful", rev)
    source = verdicts(store, 1)
    source.start(rollout("r9"), START)
    assert names(store) == {"r3-ok", START.name}
    # starting an existing run again creates nothing, and prunes nothing more
    add(store, "r4-ok", "r4", "Successful", 4)
    source.start(rollout("r9"), START)
    assert names(store) == {"r3-ok", "r4-ok", START.name}


class FailingDeletes(MemoryAnalysisStore):
    def delete_run(self, namespace: str, name: str) -> None:
        raise RuntimeError(f"delete {namespace}/{name}: 403 Forbidden")


def test_a_failed_delete_never_fails_the_analysis(caplog: pytest.LogCaptureFixture) -> None:
    store = FailingDeletes()
    store.add_template(success_template())
    add(store, "r1-ok", "r1", "Successful", 1)
    with caplog.at_level(logging.WARNING, logger="rollouts.verdicts.analysis_runs"):
        verdicts(store, 0).start(rollout("r9"), START)
    assert names(store) == {"r1-ok", START.name}
    assert "not pruned" in caplog.text and "403 Forbidden" in caplog.text


def test_deleting_a_run_already_gone_is_not_an_error() -> None:
    store = MemoryAnalysisStore()
    add(store, "r1-ok", "r1", "Successful", 1)
    store.delete_run("ns", "r1-ok")
    store.delete_run("ns", "r1-ok")
    assert names(store) == set()


def test_default_history_is_argo_rollouts_five_and_negative_is_refused() -> None:
    store = MemoryAnalysisStore()
    assert AnalysisVerdicts(store, no_provider, lambda: 0.0).run_history == RUN_HISTORY == 5
    with pytest.raises(ValueError, match="run_history=-1"):
        verdicts(store, -1)


def test_the_operator_passes_the_setting_to_its_verdicts() -> None:
    import kubernetes

    from rollouts.operator import build_verdicts
    from rollouts.settings import Settings

    with kubernetes.client.ApiClient() as api:  # no request is made
        source = build_verdicts(api, Settings(analysis_run_history=2))
    assert isinstance(source, AnalysisVerdicts) and source.run_history == 2
