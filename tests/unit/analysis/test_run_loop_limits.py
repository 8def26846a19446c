"""A metric decided by its limits takes no further measurements, even in a catch-up tick, and an
errored threshold metric's message names the cause.

Found running the operator against a Prometheus that was down (tests/integration/operator/
test_analysis_operator.py): a tick that came late measured every window due, past the
consecutiveErrorLimit that had already decided the run, each measurement costing the provider's
timeout times its attempts; and the Rollout's message said "2 consecutive measurement errors"
without saying what the errors were."""

from __future__ import annotations

from analysis.judge import ThresholdRule
from analysis.providers.port import Arm, Counts, Measured, ProviderError, Queries, Value
from analysis.run_loop import COMPARE_ERROR_LIMIT, MetricPlan, advance


class Down:
    """A provider whose every query fails, counting the queries it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        self.calls += 1
        raise ProviderError("cannot connect to http://127.0.0.1:1: Connection refused")


def threshold(**rule: float) -> MetricPlan:
    return MetricPlan(
        "availability",
        "value",
        10.0,
        judgement="threshold",
        count=20,
        threshold=ThresholdRule(min=0.5, **rule),  # type: ignore[arg-type]
        queries={"absolute": Queries(value="up")},
    )


def test_a_late_tick_stops_measuring_at_the_consecutive_error_limit() -> None:
    down = Down()
    # the first tick comes 10 windows late (a controller that was away)
    r = advance(
        [threshold(consecutive_error_limit=1)],
        None,
        start=0.0,
        now=100.0,
        provider_for=lambda _: down,
        alphas={},
    )
    assert r.phase == "Error"
    assert down.calls == 2 and r.metrics[0].tally.errors == 2
    assert "consecutiveErrorLimit 1" in r.message
    assert "last: cannot connect to http://127.0.0.1:1: Connection refused" in r.message


def test_a_late_tick_stops_measuring_at_the_failure_limit() -> None:
    class Low:
        calls = 0

        def measure(
            self, kind: str, arm: Arm, queries: Queries, start: float, end: float
        ) -> Measured:
            Low.calls += 1
            return Value(0.1)

    r = advance(
        [threshold(failure_limit=2)],
        None,
        start=0.0,
        now=100.0,
        provider_for=lambda _: Low(),
        alphas={},
    )
    assert r.phase == "Failed" and Low.calls == 3 and r.metrics[0].tally.failed == 3


def test_a_compare_stops_measuring_past_its_error_limit() -> None:
    down = Down()
    plan = MetricPlan(
        "errors",
        "counts",
        10.0,
        count=20,
        queries={
            "canary": Queries(events="e", total="t"),
            "baseline": Queries(events="e", total="t"),
        },
    )
    r = advance(
        [plan], None, start=0.0, now=200.0, provider_for=lambda _: down, alphas={"errors": 0.05}
    )
    assert r.phase == "Error" and "Connection refused" in r.message
    assert r.metrics[0].tally.errors == COMPARE_ERROR_LIMIT + 1


def test_a_healthy_metric_still_catches_up_every_window() -> None:
    class Fine:
        def measure(
            self, kind: str, arm: Arm, queries: Queries, start: float, end: float
        ) -> Measured:
            return Value(1.0) if kind == "value" else Counts(1, 100)

    r = advance(
        [threshold(consecutive_error_limit=1)],
        None,
        start=0.0,
        now=100.0,
        provider_for=lambda _: Fine(),
        alphas={},
    )
    assert r.metrics[0].tally.successful == 10 and r.phase == "Running"
