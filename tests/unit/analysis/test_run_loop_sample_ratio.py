"""The sample-ratio guard in the run loop (issue 12, part 2, controller path).

The owner passes the canary's asked share of requests, ``(since, share)``, on every tick; each
window of the guard's metric is fed to the guard with its own share and its request totals.
Gross loss (a canary reporting 1% of the requests at 25% asked, or none) holds the step as
Inconclusive with the threshold in the message; mesh imprecision (20% below the asked share)
never does. Counts are expected values (no noise), so each outcome is certain.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from analysis.providers.port import Arm, Counts, Measured, NoData, Queries
from analysis.run_loop import MetricPlan, TickResult, advance

RPS = 2000.0
COUNTS: Mapping[Arm, Queries] = {
    "canary": Queries(events="e", total="t"),
    "baseline": Queries(events="e", total="t"),
}


class Traffic:
    """2000 req/s (enough for an identical canary to promote within the step), both arms with
    1% errors; the canary gets ``got(t)`` of the requests at time ``t``."""

    def __init__(self, got: Callable[[float], float]) -> None:
        self.got = got

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        share = sum(self.got(t + 0.5) for t in range(int(start), int(end))) / (end - start)
        requests = RPS * (end - start) * (share if arm == "canary" else 1 - share)
        if requests <= 0:
            raise NoData(f"{arm}: no requests in the window (total is 0)")
        return Counts(events=0.01 * requests, total=requests)


def run(
    traffic: Traffic,
    shares: Callable[[float], Sequence[tuple[float, float]]],
    *,
    changes: Callable[[float], Sequence[float]] = lambda _: (),
    until: int = 1800,
    plans: Sequence[MetricPlan] | None = None,
    kind: Literal["step", "background"] = "step",
) -> list[TickResult]:
    """Tick every 10 s as the controller does, the state round-tripped through JSON."""
    plans = plans or [MetricPlan("errors", "counts", 30.0, count=60, queries=COUNTS)]
    state: dict[str, Any] | None = None
    out = []
    for now in range(0, until + 1, 10):
        r = advance(
            plans,
            state,
            start=0.0,
            now=float(now),
            provider_for=lambda _: traffic,
            alphas={p.name: 0.05 / len(plans) for p in plans},
            weight_changes=changes(now),
            shares=shares(now),
            kind=kind,
        )
        state = json.loads(json.dumps(r.state))
        out.append(r)
        if r.phase != "Running":
            break
    return out


def test_gross_loss_holds_the_step_inconclusive_with_the_threshold_in_the_message() -> None:
    ticks = run(Traffic(lambda t: 0.01), lambda _: ((0.0, 0.25),))
    last = ticks[-1]
    assert last.phase == "Inconclusive"
    assert last.message.startswith("sample-ratio mismatch: the canary received 1.00% of requests")
    assert "25.00% configured" in last.message and "below 0.5 of its share" in last.message
    assert "e-value" in last.message and ">= 1e+03" in last.message
    # the guard's own evidence is kept in the run's state
    assert last.state["sampleRatio"]["mismatch"] is True
    # within a few windows, not at the step's end (60 windows of 30 s)
    assert len(ticks) * 10 <= 600


def test_mesh_imprecision_twenty_percent_below_the_weight_never_fires() -> None:
    ticks = run(Traffic(lambda t: 0.20), lambda _: ((0.0, 0.25),))
    assert all("sample-ratio" not in r.message for r in ticks)
    assert ticks[-1].phase == "Successful"
    assert ticks[-1].state["sampleRatio"]["mismatch"] is False


def test_without_the_asked_share_the_guard_stays_silent() -> None:
    """What the controller did before it passed the weight: the guard never fired."""
    ticks = run(Traffic(lambda t: 0.01), lambda _: (), until=600)
    assert all(r.phase != "Inconclusive" for r in ticks)
    assert "sampleRatio" not in ticks[-1].state or not ticks[-1].state["sampleRatio"]["mismatch"]


def test_a_canary_that_reports_no_requests_fires_the_guard() -> None:
    ticks = run(Traffic(lambda t: 0.0), lambda _: ((0.0, 0.25),))
    assert ticks[-1].phase == "Inconclusive"
    assert "the canary received 0.00% of requests" in ticks[-1].message


def test_each_piece_of_a_window_cut_at_a_change_has_its_own_share() -> None:
    """The weight drops from 50% to 5% at t = 315 s, inside the window [300, 330]. The canary
    gets exactly what is asked. Judged against the old 50%, the pieces after the change would
    look like a canary losing nine tenths of its share; each with its own share, nothing fires."""
    change = 315.0

    def asked(t: float) -> float:
        return 0.05 if t >= change else 0.5

    def told(now: float) -> tuple[tuple[float, float], ...]:
        return ((0.0, 0.5),) if now < change else ((change, 0.05),)

    ticks = run(
        Traffic(asked),
        told,
        changes=lambda now: (change,) if now >= change else (),
        until=1200,
        kind="background",  # runs on across the change (a step would promote before it)
    )
    assert all("sample-ratio" not in r.message for r in ticks)
    assert ticks[-1].state["shares"] == [[0.0, 0.5], [change, 0.05]]
    assert ticks[-1].state["sampleRatio"]["mismatch"] is False


def test_a_stale_share_is_not_applied_to_windows_after_a_change() -> None:
    """Told only the old share (50%) while the canary gets the new 5%: the guard fires. This is
    the control for the test above: the share the window gets is what decides."""
    ticks = run(
        Traffic(lambda t: 0.05 if t >= 315.0 else 0.5), lambda _: ((0.0, 0.5),), kind="background"
    )
    assert ticks[-1].phase == "Inconclusive" and "sample-ratio mismatch" in ticks[-1].message


def test_requests_are_counted_once_however_many_metrics_measure_them() -> None:
    """Two counts metrics over the same requests: the guard reads the first one only, so its
    evidence is what one metric alone gives (feeding both would square its likelihood ratio)."""
    one = run(Traffic(lambda t: 0.1), lambda _: ((0.0, 0.25),), until=300)
    plans = [
        MetricPlan("errors", "counts", 30.0, count=60, queries=COUNTS),
        MetricPlan("timeouts", "counts", 30.0, count=60, queries=COUNTS),
    ]
    two = run(Traffic(lambda t: 0.1), lambda _: ((0.0, 0.25),), until=300, plans=plans)
    assert one[-1].state["sampleRatio"] == two[-1].state["sampleRatio"]
    assert one[-1].state["sampleRatio"]["total"] > 0
