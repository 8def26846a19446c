"""What ``sluice simulate`` answers for web checks and gates, which have no server to ask.

A web metric's answer is scripted from the scenario: healthy traffic (no effect) gives a value
inside the metric's threshold, a scenario with a regression one outside it, so a smoke test
agrees with the traffic the other metrics see; ``--web URL=pass|fail|error`` overrides per URL
(``error``: the endpoint is down, each measurement an Error). Gates open at scripted simulated
seconds (``--gate URL=SECONDS``); a gate not scripted opens ``DEFAULT_GATE_SECONDS`` after the
rollout first asks it, so an example with a gate still completes. Job checks finish at once,
succeeding on healthy traffic and failing under a regression.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from analysis.api import Metric, Threshold, WebSpec
from analysis.providers.job import LABEL_RUN
from analysis.providers.port import Arm, Measured, MetricProvider, ProviderError, Queries, Value
from rollouts.api.rollout import Gate
from rollouts.verdicts.gates import ScriptedGateProbe

WebAnswer = Literal["pass", "fail", "error"]
DEFAULT_GATE_SECONDS = 60.0
"""Simulated seconds an unscripted gate stays closed after it is first asked."""


def passing_value(t: Threshold) -> float:
    """A value the threshold accepts (its bound, or the middle of both)."""
    if t.min is not None and t.max is not None:
        return (t.min + t.max) / 2
    return t.min if t.min is not None else t.max if t.max is not None else 0.0


def failing_value(t: Threshold) -> float:
    """A value the threshold refuses (one past a bound)."""
    if t.max is not None:
        return t.max + max(1.0, abs(t.max))
    assert t.min is not None
    return t.min - max(1.0, abs(t.min))


class SimulatedWeb:
    """One web metric's scripted endpoint."""

    def __init__(self, spec: WebSpec, threshold: Threshold, answer: WebAnswer) -> None:
        self.spec, self.threshold, self.answer = spec, threshold, answer

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        if self.answer == "error":
            raise ProviderError(f"GET {self.spec.url}: HTTP 503 (simulated: --web ...=error)")
        ok = self.answer == "pass"
        return Value(passing_value(self.threshold) if ok else failing_value(self.threshold))


def web_factory(
    overrides: Mapping[str, WebAnswer], healthy: bool
) -> Callable[[Metric, str, object], MetricProvider]:
    """A ``RunLifecycle.web_factory`` answering from the scenario, or the per-URL overrides."""

    def build(metric: Metric, _namespace: str, _store: object) -> MetricProvider:
        spec, threshold = metric.provider.web, metric.threshold
        assert spec is not None and threshold is not None  # the API requires both together
        answer = overrides.get(spec.url, "pass" if healthy else "fail")
        return SimulatedWeb(spec, threshold, answer)

    return build


class SimulatedGates(ScriptedGateProbe):
    """Scripted gates; an unscripted one opens ``default_seconds`` after it is first asked."""

    def __init__(
        self,
        opens_at: Mapping[str, float],
        clock: Callable[[], float],
        default_seconds: float = DEFAULT_GATE_SECONDS,
    ) -> None:
        super().__init__(opens_at, clock)
        self.default_seconds = default_seconds

    def check(self, gate: Gate) -> tuple[bool, str]:
        if gate.url not in self.opens_at:
            self.opens_at[gate.url] = self.clock() + self.default_seconds
        return super().check(gate)


class SimulatedJobs:
    """Job checks in the simulator: a Job finishes as soon as it is created, succeeding on
    healthy traffic and failing under a regression (``analysis.providers.job.Jobs``)."""

    def __init__(self, healthy: bool) -> None:
        self.healthy = healthy
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}

    def create_job(self, namespace: str, job: Mapping[str, Any]) -> None:
        done = {"type": "Complete"} if self.healthy else {"type": "Failed", "reason": "Simulated"}
        doc = {**job, "status": {"conditions": [{"status": "True", **done}]}}
        self.jobs[(namespace, str(job["metadata"]["name"]))] = doc

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.jobs.get((namespace, name))

    def delete_jobs(self, namespace: str, run: str) -> None:
        for key, job in list(self.jobs.items()):
            if key[0] == namespace and job["metadata"]["labels"].get(LABEL_RUN) == run:
                del self.jobs[key]

    def log_tail(self, namespace: str, job: str, lines: int) -> str:
        return "simulated: " + ("all tests passed" if self.healthy else "tests failed")
