"""An Error measurement is no measurement: a threshold metric never succeeds on windows that
errored, as in Argo (``count`` counts completed measurements; errors count only toward
``consecutiveErrorLimit``).

Found running blue-green pre-promotion analysis with the operator
(tests/integration/operator/test_analysis_strategies.py): a threshold metric with ``count: 2``
whose two queries both failed was Successful (its two *windows* had passed), and the preview was
promoted on no data at all. The same held for a Prometheus that went down for the last windows of
a metric's count or duration."""

from __future__ import annotations

from collections.abc import Sequence

from analysis.judge import ThresholdRule
from analysis.providers.port import Arm, Measured, ProviderError, Queries, Value
from analysis.run_loop import MetricPlan, TickResult, advance


class Script:
    """A provider answering window by window from a script: a number, or ``None`` for an error."""

    def __init__(self, answers: Sequence[float | None]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if answer is None:
            raise ProviderError("cannot connect to http://127.0.0.1:1: Connection refused")
        return Value(answer)


def plan(*, count: int | None = None, duration: float | None = None) -> MetricPlan:
    return MetricPlan(
        "availability",
        "value",
        1.0,
        judgement="threshold",
        count=count,
        duration=duration,
        threshold=ThresholdRule(min=0.5, count=count),
        queries={"absolute": Queries(value="up")},
    )


def run(p: MetricPlan, script: Script, until: int) -> list[TickResult]:
    """Tick once a second (one window per tick) up to ``until``; every tick's result."""
    state = None
    out = []
    for now in range(1, until + 1):
        r = advance([p], state, start=0.0, now=float(now), provider_for=lambda _: script, alphas={})
        state = r.state
        out.append(r)
        if r.phase != "Running":
            break
    return out


def test_count_reached_by_errored_windows_only_is_not_a_success() -> None:
    script = Script([None])  # Prometheus unreachable throughout
    results = run(plan(count=2), script, until=20)
    # past its two windows it measures on; the 5th consecutive error is over the default limit
    assert [r.phase for r in results] == ["Running"] * 4 + ["Error"]
    last = results[-1]
    assert script.calls == 5 and "consecutiveErrorLimit 4" in last.message


def test_prometheus_down_for_the_last_windows_of_the_count_never_succeeds() -> None:
    script = Script([1.0, None])  # up for the first window, down from the second on
    results = run(plan(count=3), script, until=20)
    assert all(r.phase == "Running" for r in results[:-1])
    assert results[-1].phase == "Error"
    tally = results[-1].metrics[0].tally
    assert tally.successful == 1 and tally.errors == 5


def test_errors_in_between_extend_the_count_and_then_it_succeeds() -> None:
    script = Script([1.0, None, None, 1.0, 1.0])
    results = run(plan(count=3), script, until=20)
    assert [r.phase for r in results] == ["Running"] * 4 + ["Successful"]
    tally = results[-1].metrics[0].tally
    assert tally.successful == 3 and tally.errors == 2 and script.calls == 5


def test_a_duration_ending_on_an_error_waits_for_a_completed_measurement() -> None:
    script = Script([1.0, 1.0, None, 1.0])
    results = run(plan(duration=3.0), script, until=20)
    # three windows passed at t=3, the last errored: one more window decides it
    assert [r.phase for r in results] == ["Running"] * 3 + ["Successful"]
    assert results[-1].metrics[0].tally.errors == 1
