"""Windows never straddle a weight change (issue 12, part 3).

The constructed case: 200 req/s, identical canary and baseline (1% errors), the canary weight
goes from 5% to 50% at t = 330 s, inside the measurement window [300, 360]; a shared incident
(errors x10 on both arms) fills that window's second half. Measured whole, the window credits the
canary with a share of requests averaged over both weights but a share of errors taken almost all
at 50%: identical canaries look 1.8x worse, and abort. Cut at the change, each piece has one
split and nothing is wrong. Counts are the expected values (no noise), so each outcome is certain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from analysis.providers.port import Arm, Counts, Measured, Queries
from analysis.run_loop import MetricPlan, TickResult, advance

RPS = 200.0
CHANGE = 330.0
INCIDENT = (330.0, 360.0)
COUNTS: Mapping[Arm, Queries] = {
    "canary": Queries(events="e", total="t"),
    "baseline": Queries(events="e", total="t"),
}


def _integral(f: Any, lo: float, hi: float) -> float:
    """Exact integral of a piecewise-constant rate with breaks on whole seconds."""
    return sum(f(t + 0.5) for t in range(int(lo), int(hi)))


class Identical:
    """Both arms' expected counts; only the canary's weight and a shared incident vary."""

    def __init__(self) -> None:
        self.windows: list[tuple[float, float]] = []

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        if arm == "canary":
            self.windows.append((start, end))

        def share(t: float) -> float:
            w = 0.5 if t >= CHANGE else 0.05
            return w if arm == "canary" else 1 - w

        def error_p(t: float) -> float:
            return 0.1 if INCIDENT[0] <= t < INCIDENT[1] else 0.01

        requests = _integral(lambda t: RPS * share(t), start, end)
        errors = _integral(lambda t: RPS * share(t) * error_p(t), start, end)
        return Counts(events=errors, total=requests)


def run(provider: Identical, *, tell_changes: bool) -> TickResult:
    plan = MetricPlan("errors", "counts", 60.0, queries=COUNTS)  # background: until stopped
    state: dict[str, Any] | None = None
    for now in range(0, 661, 10):
        changes = (CHANGE,) if tell_changes and now >= CHANGE else ()
        r = advance(
            [plan],
            state,
            start=0.0,
            now=float(now),
            provider_for=lambda _: provider,
            alphas={"errors": 0.05},
            kind="background",
            weight_changes=changes,
        )
        state = json.loads(json.dumps(r.state))
        if r.phase != "Running":
            return r
    return r


def test_a_window_straddling_a_weight_change_confounds_identical_canaries() -> None:
    r = run(Identical(), tell_changes=False)
    assert r.phase == "Failed" and "'errors'" in r.message


def test_windows_cut_at_the_weight_change_do_not_abort_identical_canaries() -> None:
    provider = Identical()
    r = run(provider, tell_changes=True)
    assert r.phase == "Running", r.message
    assert (300.0, 330.0) in provider.windows and (330.0, 360.0) in provider.windows
    assert (300.0, 360.0) not in provider.windows
    assert (360.0, 420.0) in provider.windows  # the schedule after the cut is unchanged
    ev = r.metrics[0].evidence
    assert ev is not None and ev.estimate is not None and abs(ev.estimate - 1.0) < 0.05
    assert r.state["cuts"] == [CHANGE]


def test_the_cut_is_remembered_once_told() -> None:
    # the controller passes only the newest change time; the run keeps earlier ones in its state
    plan = MetricPlan("errors", "counts", 60.0, queries=COUNTS)
    provider = Identical()
    state: dict[str, Any] | None = None
    for now, changes in ((330.0, (CHANGE,)), (700.0, (650.0,))):
        r = advance(
            [plan],
            state,
            start=0.0,
            now=now,
            provider_for=lambda _: provider,
            alphas={"errors": 0.05},
            kind="background",
            weight_changes=changes,
        )
        state = json.loads(json.dumps(r.state))
    assert state is not None and state["cuts"] == [CHANGE, 650.0]
    assert (300.0, 330.0) in provider.windows and (600.0, 650.0) in provider.windows
