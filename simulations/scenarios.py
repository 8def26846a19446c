"""The benchmark's grid: conditions (traffic, schedule, error rate, latency shape) × scenarios.

A *condition* is what the service is like; a *scenario* is what the canary does in it (nothing,
with or without a nuisance, or a regression). Tuned comparators are calibrated once per condition
on its clean A/A scenario, so every scenario of a condition is judged at the same safety.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulations.latency import HeavyTail, LatencyShape, LogNormal, transformed_cdf
from simulations.schedule import WeightSchedule
from simulations.traffic import Effect, Nuisances, TrafficModel

STEP_S = 600.0
STEPS = WeightSchedule.stepped((0.05, 0.25, 0.5), STEP_S)
ONE_POD = WeightSchedule.one_pod(100, 3 * STEP_S)


@dataclass(frozen=True)
class Condition:
    total_rps: float
    schedule: WeightSchedule = STEPS
    base_error_rate: float = 0.01
    latency: LatencyShape = field(default_factory=LogNormal)

    @property
    def label(self) -> str:
        return (
            f"{self.total_rps:g} rps, {self.schedule.name}, "
            f"{self.base_error_rate:.1%} errors, {self.latency.name}"
        )


@dataclass(frozen=True)
class Scenario:
    condition: Condition
    effect: Effect = field(default_factory=Effect)
    nuisances: Nuisances = field(default_factory=Nuisances)
    nuisance_name: str = ""

    @property
    def label(self) -> str:
        if self.effect.is_null:
            return "A/A" + (f" + {self.nuisance_name}" if self.nuisance_name else "")
        return self.effect.name

    def model(self) -> TrafficModel:
        c = self.condition
        return TrafficModel(c.total_rps, c.base_error_rate, c.latency, self.effect, self.nuisances)

    def true_ratio(self, edges: tuple[float, ...] = (0.25, 0.5)) -> float:
        """The canary's worst event-rate ratio while the effect is on: errors, or exceedance of a
        latency edge. This is what a ratio tolerance is about."""
        ef = self.effect
        ratio = ef.error_ratio
        if ef.latency_scale != 1.0 or ef.tail_fraction > 0:
            b = np.asarray(edges)
            base = 1 - transformed_cdf(self.condition.latency, b, np.ones(1))[0]
            can = (
                1
                - transformed_cdf(
                    self.condition.latency,
                    b,
                    np.array([ef.latency_scale]),
                    ef.tail_fraction,
                    ef.tail_add_s,
                )[0]
            )
            ratio = max(ratio, float(np.max(can / base)))
        return ratio

    def kind(self, tolerance: float = 1.2) -> str:
        """ "A/A", "regression" (worse than tolerated) or "good" (worse, but within tolerance)."""
        if self.effect.is_null:
            return "A/A"
        return "regression" if self.true_ratio() > tolerance else "good"


NUISANCES: dict[str, Nuisances] = {
    "diurnal drift": Nuisances(diurnal_amplitude=0.3),
    "shared incident": Nuisances(incident_prob=1.0),
    "pod spread": Nuisances(pod_spread=0.1, pod_latency_spread=0.02),
    "cold start": Nuisances(cold_start_s=60.0),
    "scrape gaps": Nuisances(scrape_gap_prob=0.05),
    "counter resets": Nuisances(counter_reset_prob=0.01),
    "all nuisances": Nuisances(
        diurnal_amplitude=0.3,
        incident_prob=1.0,
        pod_spread=0.1,
        pod_latency_spread=0.02,
        cold_start_s=60.0,
        scrape_gap_prob=0.05,
        counter_reset_prob=0.01,
    ),
}


def error_effects(ratios: tuple[float, ...] = (1.5, 2.0, 5.0, 20.0)) -> list[Effect]:
    return [Effect(f"errors ×{r:g}", error_ratio=r) for r in ratios]


def latency_effects(scales: tuple[float, ...] = (1.025, 1.05, 1.1, 1.25)) -> list[Effect]:
    out = [Effect(f"latency +{100 * (s - 1):g}%", latency_scale=s) for s in scales]
    return [*out, Effect("tail: 2% +300 ms", tail_fraction=0.02, tail_add_s=0.3)]


TIMING_EFFECTS = [
    Effect("errors ×5 from 15 min", error_ratio=5.0, onset_s=900.0),
    Effect(
        "errors ×5 intermittent", error_ratio=5.0, intermittent_on_s=60.0, intermittent_off_s=120.0
    ),
]


def grid(quick: bool) -> dict[Condition, list[Scenario]]:
    """The scenarios of every condition; ``quick`` is a subset that runs in a couple of minutes."""
    out: dict[Condition, list[Scenario]] = {}

    def add(cond: Condition, effects: list[Effect], nuisances: bool) -> None:
        sc = out.setdefault(cond, [Scenario(cond)])
        sc.extend(Scenario(cond, e) for e in effects)
        if nuisances:
            sc.extend(Scenario(cond, nuisances=n, nuisance_name=k) for k, n in NUISANCES.items())

    if quick:
        for rps in (20.0, 200.0):
            add(
                Condition(rps),
                [*error_effects((1.5, 2.0, 5.0)), *latency_effects((1.1, 1.25)), *TIMING_EFFECTS],
                True,
            )
        return out
    for rps in (5.0, 20.0, 200.0, 2000.0):
        for sched in (STEPS, ONE_POD):
            for err in (0.001, 0.01, 0.02):
                main = sched is STEPS and err == 0.01
                effects = [*error_effects(), *TIMING_EFFECTS]
                if main:
                    effects += latency_effects()
                add(Condition(rps, sched, err), effects, main)
        add(Condition(rps, STEPS, 0.01, HeavyTail()), latency_effects(), False)
    return out
