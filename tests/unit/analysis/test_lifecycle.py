"""The AnalysisRun lifecycle: templates are read once, at creation, and what a run needs is kept
in it (each metric's share of the one error budget); a tick reads only the run and writes only
when something came due; a budget that cannot be split is an error naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from analysis.api import (
    AnalysisRun,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    MetricResult,
    parse_template,
)
from analysis.lifecycle import (
    Analysis,
    RunLifecycle,
    RunRequest,
    TemplateRef,
    Unresolved,
)
from analysis.providers.port import Arm, Counts, Measured, MetricProvider, Queries
from analysis.run_loop import MetricReport
from analysis.store.memory import MemoryAnalysisStore
from analysis.store.port import AnalysisRunStore, RunOwner

OWNER = RunOwner("ns", "web", "uid-1")
BUILTINS = {"canary-service": "web-canary", "stable-service": "web"}


def template(name: str, metrics: list[tuple[str, float | None]]) -> dict[str, Any]:
    q = "sum(increase(requests{service={{args.canary-service}}}[{{window}}]))"
    arm = {"events": q, "total": q}

    def metric(m: str, alpha: float | None) -> dict[str, Any]:
        compare: dict[str, Any] = {"tolerance": 1.25}
        if alpha is not None:
            compare["alpha"] = alpha
        return {
            "name": m,
            "kind": "counts",
            "interval": "60s",
            "count": 10,
            "provider": {"prometheus": {"canary": arm, "baseline": arm}},
            "compare": compare,
        }

    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"metrics": [metric(m, a) for m, a in metrics]},
    }


class CountingStore(MemoryAnalysisStore):
    """The memory store, counting template reads and status writes."""

    def __init__(self) -> None:
        super().__init__()
        self.template_reads = 0
        self.status_writes = 0

    def get_template(
        self, namespace: str, name: str, cluster_scope: bool = False
    ) -> AnalysisTemplate | ClusterAnalysisTemplate | None:
        self.template_reads += 1
        return super().get_template(namespace, name, cluster_scope)

    def update_run_status(self, run: AnalysisRun) -> AnalysisRun:
        self.status_writes += 1
        return super().update_run_status(run)


class Steady:
    """Every window: 1000 requests and 10 errors on each arm."""

    def __init__(self) -> None:
        self.calls = 0

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        self.calls += 1
        return Counts(events=10.0, total=1000.0)


def result_of(report: MetricReport) -> MetricResult:
    """Just enough of the status record to see what a tick measured."""
    return MetricResult(name=report.name, phase=report.phase, successful=len(report.measurements))


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def lifecycle(store: AnalysisRunStore, clock: Clock, provider: Steady) -> RunLifecycle:
    def factory(*_: Any) -> MetricProvider:
        return provider

    return RunLifecycle(store, factory, clock, result_of=result_of)


def analysis(*names: str, background: bool = False) -> Analysis:
    return Analysis(tuple(TemplateRef(n) for n in names), background=background)


def request(name: str, own: Analysis, *budget: Analysis, kind: Any = "step") -> RunRequest:
    return RunRequest(
        owner=OWNER,
        name=name,
        revision="r2",
        attempt=1,
        kind=kind,
        step_index=1 if kind == "step" else None,
        analysis=own,
        budget=budget or (own,),
        builtins=BUILTINS,
    )


def alphas(run: AnalysisRun) -> dict[str, float | None]:
    return {m.name: m.compare.alpha if m.compare else None for m in run.spec.metrics}


def setup(*templates: dict[str, Any]) -> tuple[CountingStore, Clock, Steady, RunLifecycle]:
    store, clock, provider = CountingStore(), Clock(), Steady()
    for t in templates:
        store.add_template(parse_template(t))
    return store, clock, provider, lifecycle(store, clock, provider)


# ------------------------------------------------------------------------------ creating


def test_each_metric_keeps_its_share_of_the_budget_in_the_run() -> None:
    store, _, _, runs = setup(
        template("errors", [("errors", 0.02), ("latency", None)]), template("cpu", [("cpu", None)])
    )
    step, other = analysis("errors"), analysis("cpu")
    run = runs.create(request("web-r2-step1", step, step, other))
    assert alphas(run) == pytest.approx({"errors": 0.02, "latency": 0.015})
    # the other analysis's template was read for the budget, each template once
    assert store.template_reads == 2


def test_explicit_alphas_over_the_budget_are_an_error_naming_the_field() -> None:
    store, _, _, runs = setup(template("a", [("errors", 0.05)]), template("b", [("latency", 0.04)]))
    a, b = analysis("a"), analysis("b")
    with pytest.raises(Unresolved) as e:
        runs.create(request("web-r2-step1", a, a, b))
    assert str(e.value) == (
        "template b: spec.metrics[0].compare.alpha: 0.04 brings the explicit alphas to 0.09, "
        "over the rollout's alpha 0.05"
    )
    assert store.runs == {}


def test_a_metric_left_without_alpha_gets_no_fallback_share() -> None:
    store, _, _, runs = setup(template("a", [("errors", 0.05)]), template("b", [("latency", None)]))
    a, b = analysis("a"), analysis("b")
    with pytest.raises(
        Unresolved, match=r"^template b: spec\.metrics\[0\]\.compare\.alpha: not set"
    ):
        runs.create(request("web-r2-step1", a, a, b))
    assert store.runs == {}


def test_a_metric_in_background_and_step_analysis_draws_once_from_the_budget() -> None:
    _, _, _, runs = setup(
        template("errors", [("errors", None)]), template("lat", [("latency", None)])
    )
    step = analysis("errors", "lat")
    background = analysis("errors", background=True)
    bg = runs.create(request("web-r2-bg", background, step, background, kind="background"))
    st = runs.create(request("web-r2-step1", step, step, background))
    # two metrics share 0.05; errors is judged by two e-processes, which split its 0.025
    assert alphas(bg) == pytest.approx({"errors": 0.0125})
    assert alphas(st) == pytest.approx({"errors": 0.0125, "latency": 0.025})


# ------------------------------------------------------------------------------ ticking


def test_a_tick_reads_no_template_and_writes_only_when_a_window_came_due() -> None:
    store, clock, provider, runs = setup(template("errors", [("errors", None)]))
    a = analysis("errors")
    run = runs.tick(runs.create(request("web-r2-step1", a)))  # the first lists its metrics
    reads, writes = store.template_reads, store.status_writes

    clock.t += 30  # the first window (60 s) has not ended
    run = runs.tick(run)
    assert (store.template_reads, store.status_writes, provider.calls) == (reads, writes, 0)

    clock.t += 31  # now it has: one measurement per arm, one status write
    run = runs.tick(run)
    assert (store.template_reads, store.status_writes, provider.calls) == (reads, writes + 1, 2)
    assert run.status is not None and run.status.metrics[0].successful == 1

    run = runs.tick(run)  # nothing new: nothing written
    assert store.status_writes == writes + 1
    assert store.template_reads == reads


def test_a_run_without_its_share_ends_in_error_naming_the_field() -> None:
    _, _, _, runs = setup(template("errors", [("errors", None)]))
    run = runs.create(request("web-r2-step1", analysis("errors")))
    assert run.spec.metrics[0].compare is not None
    bare = run.spec.metrics[0].compare.model_copy(update={"alpha": None})
    spec = run.spec.model_copy(
        update={"metrics": [run.spec.metrics[0].model_copy(update={"compare": bare})]}
    )
    run = runs.tick(run.model_copy(update={"spec": spec}))
    assert run.status is not None and run.status.phase == "Error"
    assert run.status.message.startswith("spec.metrics[0].compare.alpha: not set")
