"""The AnalysisRun loop on the simulated provider: schedule, verdicts, error budget, resumption.

Fixed seeds; the regressions are large (errors ×5, latency +50%) so the verdicts asserted are far
from the decision boundary at these traffic levels (400 requests/s, 20% to the canary)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from analysis.judge import ThresholdRule
from analysis.providers.port import Arm, Counts, Measured, NoData, ProviderError, Queries
from analysis.run_loop import MetricPlan, TickResult, advance
from simulations.simulated_provider import SimulatedProvider, scenario

COUNTS: Mapping[Arm, Queries] = {
    "canary": Queries(events="e", total="t"),
    "baseline": Queries(events="e", total="t"),
}
BUCKETS: Mapping[Arm, Queries] = {"canary": Queries(buckets="b"), "baseline": Queries(buckets="b")}
ALPHAS = {"errors": 0.025, "latency": 0.025}


def errors(**kw: Any) -> MetricPlan:
    return MetricPlan("errors", "counts", 30.0, **{"queries": COUNTS, "count": 20, **kw})


def latency(**kw: Any) -> MetricPlan:
    return MetricPlan("latency", "histogram", 30.0, **{"queries": BUCKETS, "count": 20, **kw})


def run(
    plans: list[MetricPlan],
    provider: Any,
    until: float = 1200,
    *,
    step: float = 10,
    state: dict[str, Any] | None = None,
    start: float = 0.0,
    **kw: Any,
) -> tuple[float, TickResult]:
    now = start
    while True:
        r = advance(
            plans, state, start=start, now=now, provider_for=lambda _: provider, alphas=ALPHAS, **kw
        )
        state = json.loads(json.dumps(r.state))  # status round trip: JSON only
        if r.phase != "Running" or now >= until:
            return now, r
        now += step


def sim(name: str, weight: float = 20) -> SimulatedProvider:
    return SimulatedProvider(scenario(name), lambda: weight)


def test_error_regression_fails_naming_the_metric_and_its_evidence() -> None:
    t, r = run([errors(), latency(critical=False)], sim("error-regression"))
    assert r.phase == "Failed"
    assert "metric 'errors' failed" in r.message and "e-value" in r.message
    m = {x.name: x for x in r.metrics}["errors"]
    assert m.evidence is not None and m.evidence.estimate is not None
    assert m.evidence.estimate > 2.0 and m.evidence.events > 0
    assert t <= 300  # within a few windows of the first measurement


def test_latency_regression_fails_on_the_histogram() -> None:
    _, r = run([errors(), latency()], sim("latency-regression"))
    assert r.phase == "Failed" and "'latency'" in r.message


def test_healthy_step_promotes_after_the_minimum_but_not_before() -> None:
    plans = [errors(tolerance=1.25), latency(critical=False)]
    t, r = run(plans, sim("healthy"))
    assert r.phase == "Successful", r.message
    assert t >= 60  # first window after no warm-up plus one more interval
    assert t < 630  # shown within tolerance before the horizon


def test_warm_up_is_never_measured_and_windows_tile() -> None:
    seen: list[tuple[str, float, float]] = []

    class Spy:
        def measure(self, kind: str, arm: Arm, q: Queries, start: float, end: float) -> Measured:
            seen.append((arm, start, end))
            raise NoData("nothing")

    advance(
        [errors(initial_delay=60.0)],
        None,
        start=100.0,
        now=250.0,
        provider_for=lambda _: Spy(),
        alphas=ALPHAS,
    )
    canary = [(s, e) for a, s, e in seen if a == "canary"]
    assert canary == [(160.0, 190.0), (190.0, 220.0), (220.0, 250.0)]


def test_no_data_is_insufficient_evidence_and_never_promotes() -> None:
    _, r = run([errors(count=4)], sim("healthy", weight=0))
    assert r.phase == "Inconclusive"
    assert "insufficient evidence" in r.message
    m = r.metrics[0]
    assert m.tally.successful == 0 and m.tally.inconclusive == 4
    assert all(x.phase == "Inconclusive" for x in m.measurements)


def test_inconclusive_policies() -> None:
    plans = [errors(count=4)]
    _, promote = run(plans, sim("healthy", weight=0), inconclusive="promote")
    assert promote.phase == "Inconclusive"  # a critical metric with no data never promotes
    _, abort = run(plans, sim("healthy", weight=0), inconclusive="abort")
    assert abort.phase == "Failed" and "policy abort" in abort.message


def test_provider_errors_become_an_error_run_after_the_limit() -> None:
    class Down:
        def measure(self, *a: Any) -> Measured:
            raise ProviderError("connection refused")

    _, r = run([errors()], Down())
    assert r.phase == "Error"
    assert "consecutive measurement errors" in r.message and "connection refused" in r.message
    assert r.metrics[0].tally.errors == 5


def test_dry_run_metric_never_fails_the_run() -> None:
    plans = [errors(dry_run=True, count=10), latency(critical=False, count=10)]
    _, r = run(plans, sim("error-regression"), until=400)
    m = {x.name: x for x in r.metrics}
    assert m["errors"].phase == "Failed"
    assert r.phase != "Failed"


def test_threshold_metric_with_argo_limits() -> None:
    p99 = MetricPlan(
        "p99",
        "value",
        30.0,
        judgement="threshold",
        count=3,
        threshold=ThresholdRule(max=0.3),
        queries={"absolute": Queries(value="histogram_quantile(0.99, x)")},
    )
    _, r = run([p99], sim("healthy"))
    assert r.phase == "Failed" and "'p99'" in r.message
    assert r.metrics[0].measurements[0].value is not None


def test_history_is_bounded() -> None:
    _, r = run([errors(count=15)], sim("healthy"), until=600, kind="background")
    assert len(r.metrics[0].measurements) == 10


def test_evidence_carries_over_to_the_next_run() -> None:
    """A second step run inheriting the first run's e-process sees all the events so far."""
    provider = sim("healthy")
    plans = [errors(count=6, tolerance=1.01, critical=False)]
    _, first = run(plans, provider, until=200)
    inherited = first.state["tests"]
    events_first = first.metrics[0].evidence.events  # type: ignore[union-attr]
    r = advance(
        plans,
        None,
        start=200.0,
        now=260.0,
        provider_for=lambda _: provider,
        alphas=ALPHAS,
        inherit=inherited,
    )
    assert r.metrics[0].evidence is not None
    assert r.metrics[0].evidence.events > events_first
    fresh = advance(
        plans, None, start=200.0, now=260.0, provider_for=lambda _: sim("healthy"), alphas=ALPHAS
    )
    assert fresh.metrics[0].evidence is not None
    assert fresh.metrics[0].evidence.events < r.metrics[0].evidence.events


def test_background_run_never_succeeds_on_its_own() -> None:
    _, r = run([errors(tolerance=1.25)], sim("healthy"), until=300, kind="background")
    assert r.phase == "Running"


def test_canary_pods_widen_the_tolerance_and_the_evidence_survives_each_tick() -> None:
    """``compare.canaryPods`` without per-pod series: the default spread widens the tolerance, the
    evidence says so, and the e-process carries over between ticks (its alpha is the metric's
    share less the pod draw's, which the resume check must accept)."""
    plans = [errors(canary_pods=2)]
    _, r = run(plans, sim("error-regression"))
    assert r.phase == "Failed"
    ev = {x.name: x for x in r.metrics}["errors"].evidence
    assert ev is not None and "widened to" in ev.rule
    d = ev.details
    assert d.pod_spread == 0.1 and d.pod_spread_estimated is False and d.canary_pods == 2
    assert d.widened_tolerance is not None and d.widened_tolerance > d.tolerance == 1.1  # type: ignore[operator]
    assert d.alpha == ALPHAS["errors"]
    _, r = run(plans, sim("healthy"), until=300)
    d = {x.name: x for x in r.metrics}["errors"].evidence.details  # type: ignore[union-attr]
    assert d.intervals is not None and d.intervals >= 5  # every tick's windows, not the last one's
    assert d.canary_exposure is not None and d.canary_events is not None


def test_per_pod_counts_estimate_the_spread_across_ticks() -> None:
    """Per-pod counts (as the Prometheus provider reads ``sum by (pod)``) reach the pod model:
    the baseline's ten pods bound the spread, the canary's two pods with uneven traffic count as
    fewer, and the accumulation survives the status round trip between ticks."""

    seen: list[tuple[str, float, float]] = []

    class PerPod:
        def measure(self, kind: str, arm: Arm, q: Queries, start: float, end: float) -> Measured:
            assert q.pod_label == "pod"
            seen.append((arm, start, end))
            if arm == "baseline":
                rows = tuple((f"b-{i}", 20.0 + 2 * i, 3000.0) for i in range(10))
            else:
                rows = (("c-0", 9.0, 900.0), ("c-1", 1.0, 100.0))
            return Counts(sum(r[1] for r in rows), sum(r[2] for r in rows), rows)

    pod_q = {arm: Queries(events="e", total="t", pod_label="pod") for arm in ("canary", "baseline")}
    plans = [errors(canary_pods=2, queries=pod_q)]
    _, r = run(plans, PerPod(), until=200)
    ev = {x.name: x for x in r.metrics}["errors"].evidence
    assert ev is not None
    d = ev.details
    assert d.pod_spread_estimated is True and d.baseline_pods == 10
    assert d.canary_pods is not None and 1.2 < d.canary_pods < 1.25  # 90/10 traffic: (Σw)²/Σw²
    assert d.pod_spread is not None and 0 < d.pod_spread < 0.6  # pods 20-38 errors: bounded
    assert d.widened_tolerance is not None and d.widened_tolerance > 1.1
    # the baseline's last hour per pod is read once, before the first window
    history = [w for w in seen if w[2] - w[1] == 3600.0]
    assert history == [("baseline", -3600.0, 0.0)]
    assert d.intervals is not None  # the history bounds the spread but is not evidence
    assert d.baseline_events == 290.0 * d.intervals


def test_the_simulated_provider_answers_per_pod_queries_per_pod() -> None:
    """``sluice simulate`` and these tests can drive the pod model: with ``pods`` the simulated
    provider splits each arm's counts over its pods, the totals unchanged."""
    pod_q = {arm: Queries(events="e", total="t", pod_label="pod") for arm in ("canary", "baseline")}
    p = SimulatedProvider(scenario("healthy"), lambda: 20, pods=(2, 8), pod_spread=0.1)
    p.advance(120.0)
    got = p.measure("counts", "baseline", pod_q["baseline"], 60.0, 120.0)
    assert isinstance(got, Counts) and got.per_pod is not None and len(got.per_pod) == 8
    assert got.events == sum(r[1] for r in got.per_pod) and got.total == sum(
        r[2] for r in got.per_pod
    )
    plain = SimulatedProvider(scenario("healthy"), lambda: 20, pods=(2, 8))
    plain.advance(120.0)
    assert plain.measure("counts", "baseline", COUNTS["baseline"], 60.0, 120.0).per_pod is None  # type: ignore[union-attr]
    pods = SimulatedProvider(scenario("healthy"), lambda: 20, pods=(2, 8), pod_spread=0.1)
    _, r = run([errors(canary_pods=2, queries=pod_q)], pods, until=600)
    assert r.phase != "Failed"
    d = {x.name: x for x in r.metrics}["errors"].evidence.details  # type: ignore[union-attr]
    assert d.baseline_pods == 8 and d.canary_pods is not None and d.canary_pods > 1.5


class _Recording:
    """The simulated provider, recording every window asked of it."""

    def __init__(self, inner: SimulatedProvider) -> None:
        self.inner = inner
        self.asked: list[tuple[Arm, float, float]] = []

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        self.asked.append((arm, start, end))
        return self.inner.measure(kind, arm, queries, start, end)


def test_latency_edges_come_from_baseline_traffic_before_the_first_evidence_window() -> None:
    provider = _Recording(sim("healthy"))
    provider.inner.advance(900.0)  # stable traffic before the analysis starts
    _, r = run([latency(count=4)], provider, until=1020, start=900.0, kind="background")
    assert ("baseline", 300.0, 900.0) in provider.asked  # EDGE_LOOKBACK before the first window
    assert not any(arm == "canary" and lo < 900.0 for arm, lo, _ in provider.asked)
    m = r.metrics[0]
    assert [h.phase for h in m.measurements] == ["Successful"] * 4  # every window is evidence
    assert m.evidence is not None and len(m.evidence.details.edges) == 2


def test_a_window_used_to_choose_edges_is_not_evidence() -> None:
    """Without traffic before the start, the first window chooses the edges and is not folded:
    edges chosen from the counts they are tested on sit where that baseline happened to be fast."""
    _, r = run([latency(count=4)], sim("healthy"), until=120, kind="background")
    m = r.metrics[0]
    assert [h.phase for h in m.measurements] == ["Inconclusive"] + ["Successful"] * 3
    assert "choose the latency edges" in m.measurements[0].message
    folded = sum(h.values.canary + h.values.baseline for h in m.measurements[1:] if h.values)
    assert m.evidence is not None and m.evidence.events == round(folded)


def test_fixed_edges_spend_no_window() -> None:
    _, r = run([latency(count=3, edges=(0.25, 0.5))], sim("healthy"), until=90, kind="background")
    assert [h.phase for h in r.metrics[0].measurements] == ["Successful"] * 3


def test_latency_tolerance_reads_the_baseline_at_the_stretched_edge() -> None:
    plan = latency(latency_increase=0.1, latency_quantile=0.9)
    _, healthy = run([plan], sim("healthy"), until=600)
    ev = healthy.metrics[0].evidence
    assert healthy.phase != "Failed" and ev is not None
    assert ev.details.latency_increase == 0.1 and ev.details.tolerance == 1.0
    assert all(e.baseline_point == e.edge / 1.1 for e in ev.details.edges)
    assert "latency grows by at most 10%" in ev.rule
    _, slow = run([plan], sim("latency-regression"))
    assert slow.phase == "Failed" and "'latency'" in slow.message


def _later_step(plan: MetricPlan, provider: Any, earlier: TickResult, start: float) -> TickResult:
    """The first window of a later step's run that inherits ``earlier``'s e-processes."""
    return advance(
        [plan],
        None,
        start=start,
        now=start + 30.0,
        provider_for=lambda _: provider,
        alphas=ALPHAS,
        inherit=earlier.state["tests"],
    )


def test_a_later_step_keeps_the_edges_its_inherited_evidence_is_about() -> None:
    provider = sim("healthy")
    plan = latency(count=4, latency_increase=0.1)
    _, first = run([plan], provider, until=150, kind="background")
    edges = first.state["tests"]["latency"]["edges"]
    r = _later_step(plan, provider, first, 600.0)
    assert r.state["metrics"]["latency"]["edges"] == edges
    assert r.metrics[0].measurements[0].phase == "Successful"  # no window spent choosing


def test_a_latency_tolerance_freezes_edge_ratios_from_an_hour_before_the_rollout() -> None:
    provider = _Recording(sim("healthy"))
    provider.inner.advance(3900.0)  # an hour and more of stable traffic before the analysis
    plan = latency(count=4, latency_increase=0.1)
    _, r = run([plan], provider, until=4020, start=3900.0, kind="background")
    assert ("baseline", 300.0, 3900.0) in provider.asked  # STRETCH_LOOKBACK: the tail's slope
    assert ("baseline", 3300.0, 3900.0) in provider.asked  # EDGE_LOOKBACK: the edges
    assert not any(arm == "canary" and lo < 3900.0 for arm, lo, _ in provider.asked)
    ev = r.metrics[0].evidence
    assert ev is not None
    frozen = [e.tolerance for e in ev.details.edges]
    assert any(k is not None and k > 1.0 for k in frozen)
    assert r.state["metrics"]["latency"]["edgeTolerances"] == frozen
    # a later step keeps them with the edges (its evidence is about them)
    later = _later_step(plan, provider, r, 4500.0)
    assert later.state["metrics"]["latency"]["edgeTolerances"] == frozen


def test_fixed_edges_without_traffic_before_keep_the_live_interpolation() -> None:
    """Ratios read from a window that is also evidence would depend on the counts they judge."""
    plan = latency(count=3, edges=(0.25, 0.5), latency_increase=0.1)
    _, r = run([plan], sim("healthy"), until=90, kind="background")
    ev = r.metrics[0].evidence
    assert ev is not None and all(e.tolerance is None for e in ev.details.edges)
    assert "edgeTolerances" not in r.state["metrics"]["latency"]
