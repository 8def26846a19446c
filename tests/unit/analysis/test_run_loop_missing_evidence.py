"""Never promote on missing evidence: every metric kind × every inconclusive policy × NaN/empty data.

The provider here answers with Prometheus-shaped results parsed by the real shape checks
(``analysis.providers.shapes``), so "NaN" and "empty" reach the run loop exactly as they do from
Prometheus: as :class:`NoData`. The promise checked (docs/analysis.md, "What insufficient evidence
means"): a metric with no valid measurement is never a pass, so a run of such metrics never ends
Successful, whatever the policy; ``promote`` promotes only a run that saw data and nothing failed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import pytest

from analysis.judge import ThresholdRule
from analysis.providers.port import Arm, Counts, Measured, Queries, Value
from analysis.providers.shapes import to_counts, to_number
from analysis.run_loop import InconclusivePolicy, MetricPlan, TickResult, advance

Data = Literal["nan", "empty", "some"]
INTERVAL = 30.0
COUNT = 6

NAN = [{"metric": {}, "value": [0, "NaN"]}]
EMPTY: list[Any] = []


def number(v: float) -> list[dict[str, Any]]:
    return [{"metric": {}, "value": [0, str(v)]}]


class PromShaped:
    """Answers every query with what Prometheus would for ``data``: NaN (0/0 over no requests),
    an empty vector (a missing series), or a valid, healthy value every other window."""

    def __init__(self, data: Data) -> None:
        self.data = data

    def _result(self, query: str, end: float) -> Any:
        if self.data == "nan" or (self.data == "some" and int(end / INTERVAL) % 2 == 0):
            return NAN
        if self.data == "empty":
            return EMPTY
        return number({"e": 5.0, "t": 1000.0, "v": 0.1}[query])

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        what = f"{arm} query"
        if kind == "counts":
            assert queries.events is not None and queries.total is not None
            events = to_number(self._result(queries.events, end), what)
            total = to_number(self._result(queries.total, end), what)
            c: Counts = to_counts(events, total, what)
            return c
        assert queries.value is not None
        return Value(to_number(self._result(queries.value, end), what))


ARMS: Mapping[Arm, Queries] = {
    "canary": Queries(events="e", total="t", value="v"),
    "baseline": Queries(events="e", total="t", value="v"),
}


def plan(kind: str) -> MetricPlan:
    if kind == "sequential":
        return MetricPlan("errors", "counts", INTERVAL, count=COUNT, queries=ARMS, alpha=0.05)
    if kind == "mann-whitney":
        return MetricPlan(
            "latency",
            "gauge",
            INTERVAL,
            count=COUNT,
            queries=ARMS,
            judgement="mann-whitney",
            direction="either",
        )
    return MetricPlan(
        "p99",
        "value",
        INTERVAL,
        count=COUNT,
        judgement="threshold",
        threshold=ThresholdRule(max=1.0, inconclusive_limit=COUNT, count=COUNT),
        queries={"absolute": Queries(value="v")},
    )


def run(p: MetricPlan, data: Data, policy: InconclusivePolicy) -> TickResult:
    state: dict[str, Any] | None = None
    now = 0.0
    while True:
        r = advance(
            [p],
            state,
            start=0.0,
            now=now,
            provider_for=lambda _: PromShaped(data),
            alphas={p.name: 0.05},
            inconclusive=policy,
        )
        state = json.loads(json.dumps(r.state))
        if r.phase != "Running" or now > 20 * INTERVAL * COUNT:
            return r
        now += 10.0


KINDS = ("sequential", "mann-whitney", "threshold")
POLICIES: tuple[InconclusivePolicy, ...] = ("promote", "pause", "abort")


@pytest.mark.parametrize("data", ["nan", "empty"])
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("kind", KINDS)
def test_no_valid_measurement_never_promotes(
    kind: str, policy: InconclusivePolicy, data: Data
) -> None:
    r = run(plan(kind), data, policy)
    # ended (not Running forever), never Successful; abort keeps its word: it aborts
    assert r.phase == ("Failed" if policy == "abort" else "Inconclusive"), r.message
    assert "no valid measurement" in r.message and "not evidence" in r.message
    if policy == "promote":
        assert "not promoted" in r.message
    m = r.metrics[0]
    assert m.tally.successful == 0 and m.tally.failed == 0
    assert all(x.phase == "Inconclusive" for x in m.measurements)
    assert ("NaN" if data == "nan" else "empty result") in m.measurements[-1].message


EXPECTED_SOME: dict[tuple[str, InconclusivePolicy], str] = {
    # the sequential test cannot show "within tolerance" on 3 windows of 1000 requests: undecided
    # at its horizon, the run follows its policy (promote: with a warning, since data was seen)
    ("sequential", "promote"): "Successful",
    ("sequential", "pause"): "Inconclusive",
    ("sequential", "abort"): "Failed",
    # Mann-Whitney judges the windows that had values (NaN ones are left out of the sample), and
    # the threshold allows NaN windows up to its inconclusiveLimit: both decide, Pass
    **{("mann-whitney", p): "Successful" for p in POLICIES},
    **{("threshold", p): "Successful" for p in POLICIES},
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("kind", KINDS)
def test_some_valid_measurements_follow_the_policy(kind: str, policy: InconclusivePolicy) -> None:
    r = run(plan(kind), "some", policy)
    assert r.phase == EXPECTED_SOME[(kind, policy)], r.message
    m = r.metrics[0]
    assert m.tally.successful > 0 and m.tally.failed == 0
    assert m.tally.inconclusive > 0  # the NaN windows were seen, and not counted as evidence
    assert "no valid measurement" not in r.message
    if kind == "sequential" and policy == "promote":
        assert r.message.startswith("WARNING: promoted"), r.message


def test_threshold_some_valid_beyond_inconclusive_limit_follows_the_policy() -> None:
    strict = MetricPlan(
        "p99",
        "value",
        INTERVAL,
        count=COUNT,
        judgement="threshold",
        threshold=ThresholdRule(max=1.0, inconclusive_limit=0, count=COUNT),
        queries={"absolute": Queries(value="v")},
    )
    promoted = run(strict, "some", "promote")
    assert promoted.phase == "Successful"
    assert promoted.message.startswith("WARNING: promoted while inconclusive")
    assert run(strict, "some", "pause").phase == "Inconclusive"
    assert run(strict, "some", "abort").phase == "Failed"


def test_threshold_count_reached_on_nan_only_is_not_a_pass() -> None:
    """A threshold's ``count`` counts NaN windows (Argo's completed measurements): with a generous
    ``inconclusiveLimit`` it used to end Successful, and so promote, on no value at all."""
    r = run(plan("threshold"), "nan", "pause")
    assert r.phase == "Inconclusive"
    assert r.metrics[0].phase == "Inconclusive"
    assert r.metrics[0].tally.count == COUNT and r.metrics[0].tally.inconclusive == COUNT
