"""Crash-safe analysis (issue 13): a run whose status never landed is repaired from its spec, and
a run whose status stops keeping up with its schedule is reported as stuck.

The store here is the memory store with a status write that can be made to fail, the way the
Kubernetes store fails when the API server answers 500 to the status subresource: the run object
exists, its status does not."""

from __future__ import annotations

from typing import Any

from analysis.api import AnalysisRun, parse_template
from analysis.lifecycle import RunLifecycle, incomplete
from analysis.providers.port import MetricProvider
from analysis.store.memory import MemoryAnalysisStore
from tests.unit.analysis.test_lifecycle import (
    OWNER,
    Clock,
    Steady,
    analysis,
    request,
    result_of,
    template,
)


class FlakyStatusStore(MemoryAnalysisStore):
    """Creates runs whole but fails the next ``failures`` status writes, as a 500 would."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def create_run(self, owner: Any, run: AnalysisRun) -> AnalysisRun:
        # the first of the Kubernetes store's two requests: the object, without its status
        created = super().create_run(owner, run.model_copy(update={"status": None}))
        if run.status is None:
            return created
        return self.update_run_status(created.model_copy(update={"status": run.status}))

    def update_run_status(self, run: AnalysisRun) -> AnalysisRun:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("500: status write failed")
        return super().update_run_status(run)


def setup() -> tuple[FlakyStatusStore, Clock, Steady, RunLifecycle]:
    store, clock, provider = FlakyStatusStore(), Clock(), Steady()
    store.add_template(parse_template(template("errors", [("errors", None)])))

    def factory(*_: Any) -> MetricProvider:
        return provider

    return store, clock, provider, RunLifecycle(store, factory, clock, result_of=result_of)


def create_without_status(store: FlakyStatusStore, runs: RunLifecycle, name: str) -> None:
    store.failures = 1
    try:
        runs.create(request(name, analysis("errors")))
    except RuntimeError:
        pass
    else:
        raise AssertionError("the status write was meant to fail")
    assert store.runs[("ns", name)].status is None  # created, status lost


def test_a_run_left_without_status_is_repaired_and_then_measures() -> None:
    store, clock, provider, runs = setup()
    create_without_status(store, runs, "web-r2-step1")
    stored = runs.runs(OWNER)[0]
    assert incomplete(stored)
    assert runs.tick(stored).status is not None  # before: a tick returned it untouched

    clock.t += 61  # the first window ended: the repaired run measures it
    run = runs.tick(runs.runs(OWNER)[0])
    assert run.status is not None and run.status.phase == "Running"
    assert run.status.state["metrics"]["errors"]["done"] == 1
    assert provider.calls == 2


def test_create_again_repairs_instead_of_returning_the_broken_run() -> None:
    store, _, _, runs = setup()
    create_without_status(store, runs, "web-r2-step1")
    again = runs.create(request("web-r2-step1", analysis("errors")))
    assert again.status is not None and again.status.phase == "Running"
    assert again.status.started_at is not None
    assert store.runs[("ns", "web-r2-step1")].status == again.status


def test_a_repaired_step_run_inherits_the_chain_of_the_previous_step() -> None:
    store, clock, _, runs = setup()
    first = runs.create(request("web-r2-step1", analysis("errors")))
    for _ in range(3):
        clock.t += 60
        first = runs.tick(first)
    assert first.status is not None
    chain = first.status.state["tests"]
    assert chain["errors"]  # the first step's e-process
    clock.t += 1
    create_without_status(store, runs, "web-r2-step2")
    second = runs.tick(store.get_run("ns", "web-r2-step2"))  # type: ignore[arg-type]
    assert second.status is not None
    assert second.status.state["tests"]["errors"] == chain["errors"]


def test_a_run_whose_status_cannot_be_written_is_reported_stuck() -> None:
    store, clock, _, runs = setup()
    run = runs.tick(runs.create(request("web-r2-step1", analysis("errors"))))
    assert runs.stalled(run) is None
    store.failures = 10**6  # every status write fails from now on
    clock.t += 3 * 60 + 1  # three windows (60 s) overdue: still within the allowance
    assert runs.stalled(run) is None
    clock.t += 60
    why = runs.stalled(run)
    assert why is not None
    assert "web-r2-step1 made no progress" in why and "'errors' is 4 measurement windows" in why


def test_a_finished_or_stopped_run_is_never_stuck() -> None:
    store, clock, _, runs = setup()
    run = runs.create(request("web-r2-step1", analysis("errors")))
    runs.stop("ns", "web-r2-step1")
    stopped = store.get_run("ns", "web-r2-step1")
    assert stopped is not None and stopped.status is not None
    clock.t += 3600
    assert runs.stalled(stopped) is None
    assert not incomplete(stopped)
    assert run.status is not None


def test_a_run_that_never_got_a_status_is_reported_after_its_grace() -> None:
    from datetime import UTC, datetime

    store, clock, _, runs = setup()
    create_without_status(store, runs, "web-r2-step1")
    stored = store.runs[("ns", "web-r2-step1")]
    created = datetime.fromtimestamp(clock.t, UTC).isoformat().replace("+00:00", "Z")
    meta = stored.metadata.model_copy(update={"creationTimestamp": created})
    run = stored.model_copy(update={"metadata": meta})
    store.failures = 10**6  # the repair's write fails too
    clock.t += 3 * 60  # three windows (60 s): within the grace
    assert runs.stalled(run) is None
    clock.t += 61
    why = runs.stalled(run)
    assert why is not None and "has had no status for 241s" in why


def test_a_run_is_stuck_only_after_a_minute_however_few_windows_are_allowed() -> None:
    """The floor under stuck-run detection (``STALL_MIN_SECONDS``): with no window of slack, a
    run one 60 s window behind is not yet stuck (a short API outage is ridden out); two
    windows (120 s) behind it is."""
    store, clock, _, runs = setup()
    run = runs.tick(runs.create(request("web-r2-step1", analysis("errors"))))
    store.failures = 10**6
    clock.t += 60 + 1
    assert runs.stalled(run, windows=0) is None
    clock.t += 60
    why = runs.stalled(run, windows=0)
    assert why is not None and "made no progress" in why
