"""Sluice itself: the real :class:`analysis.stats.policy.RolloutAnalysis`, driving the weights.

Sluice may promote a step as soon as its confidence sequence shows the canary within tolerance,
which changes the canary's weight and therefore the data it sees next; so unlike the other judges
it runs on its own simulation, one interval at a time, each run at its own step.

Adapter note: ``RolloutAnalysis.decide`` takes one ``step_started_at`` for the whole batch, while
here every run has its own step start. The adapter therefore asks for decisions with the step
clock out of the way (step long started, no maximum duration) and applies each run's minimum and
maximum step duration itself, with the policy's documented rules: promote when the policy says
PROMOTE_STEP and the step's minimum has passed; at the step's maximum duration promote with a
warning if there is enough data and no sample-ratio mismatch (``on_max_duration="promote"``),
otherwise stay paused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.stats.count_eprocess import (
    DEFAULT_ACCEPT_SCALES,
    DEFAULT_PRIOR_SCALES,
    DEFAULT_TOLERANCE,
)
from analysis.stats.histogram import choose_edges, slo_edge_weights
from analysis.stats.policy import (
    CountsInterval,
    Decision,
    HistogramInterval,
    MetricSpec,
    PolicyConfig,
    RolloutAnalysis,
)
from simulations.latency import bin_probabilities, transformed_cdf
from simulations.metrics import RunOutcomes
from simulations.schedule import WeightSchedule
from simulations.traffic import Simulator, TrafficModel

_LONG_AGO = -1e18


def slo_bucket(model: TrafficModel) -> float:
    """The bucket bound ``choose_edges`` takes for the SLO."""
    return float(next(b for b in model.bounds if b >= model.slo_s))


def latency_edges(
    model: TrafficModel, quantiles: tuple[float, ...] = (0.9, 0.99), slo: bool = True
) -> list[float]:
    """Edges frozen before the rollout from the baseline's histogram (expected counts of an hour
    of stable traffic), as an operator would derive them from a pre-rollout query."""
    bounds = np.asarray(model.bounds)
    p = bin_probabilities(transformed_cdf(model.latency, bounds, np.ones(1)))[0]
    counts = np.cumsum(p) * model.total_rps * 3600
    return choose_edges(
        (*model.bounds, np.inf), counts, quantiles=quantiles, slo=model.slo_s if slo else None
    )


@dataclass(frozen=True)
class SluiceJudge:
    """Sluice's default policy: errors and latency metrics, the default tolerance, alpha 0.05."""

    alpha: float = 0.05
    tolerance: float = DEFAULT_TOLERANCE
    warmup_s: float = 60.0
    min_step_s: float = 60.0
    name: str = "Sluice"
    prior_scales: tuple[float, ...] = DEFAULT_PRIOR_SCALES
    edge_quantiles: tuple[float, ...] = (0.9, 0.99)
    slo_edge: bool = True
    errors_alpha_share: float = 0.5
    edge_weights: tuple[float, ...] | None = None  # None: slo_edge_weights(quantile_weight)
    quantile_edge_weight: float = 3.0
    accept_prior_scales: tuple[float, ...] = DEFAULT_ACCEPT_SCALES
    promote_tolerance: float | None = None

    def describe(self) -> str:
        """The settings, for the report (so it never disagrees with what was run)."""
        share = f"{self.errors_alpha_share:g}/{1 - self.errors_alpha_share:g}"
        return (
            f"α {self.alpha:g} split {share} between errors and latency, tolerance "
            f"{self.tolerance:g}, prior scales {'/'.join(f'{x:g}' for x in self.prior_scales)}, "
            f"latency edges at the baseline's p{'/p'.join(f'{100 * q:g}' for q in self.edge_quantiles)}"
            f"{' and the SLO (weighted ' + f'{self.quantile_edge_weight:g}:1)' if self.slo_edge else ''}"
            f", {self.warmup_s:g} s warm-up"
        )

    def specs(self, model: TrafficModel) -> list[MetricSpec]:
        a_err = self.alpha * self.errors_alpha_share
        edges = tuple(latency_edges(model, self.edge_quantiles, self.slo_edge))
        weights = self.edge_weights or slo_edge_weights(
            edges, slo_bucket(model) if self.slo_edge else None, self.quantile_edge_weight
        )
        return [
            MetricSpec(
                "errors",
                "counts",
                tolerance=self.tolerance,
                alpha=a_err,
                prior_scales=self.prior_scales,
                accept_prior_scales=self.accept_prior_scales,
                promote_tolerance=self.promote_tolerance,
            ),
            MetricSpec(
                "latency",
                "histogram",
                tolerance=self.tolerance,
                alpha=self.alpha - a_err,
                bucket_bounds=(*model.bounds, float("inf")),
                edges=edges,
                edge_weights=weights,
                prior_scales=self.prior_scales,
                accept_prior_scales=self.accept_prior_scales,
                promote_tolerance=self.promote_tolerance,
            ),
        ]

    def run(
        self, model: TrafficModel, schedule: WeightSchedule, runs: int, seed: int
    ) -> RunOutcomes:
        """Simulate ``runs`` rollouts under Sluice's control and score them."""
        rng = np.random.default_rng(seed)
        sim = Simulator(model, runs, rng, schedule.duration_s)
        config = PolicyConfig(
            alpha=self.alpha,
            warmup_seconds=self.warmup_s,
            min_step_seconds=0.0,
            max_step_seconds=None,
        )
        analysis = RolloutAnalysis(self.specs(model), config, batch=runs, t0=0.0)
        weights = np.array([s.weight for s in schedule.steps])
        max_s = np.array([s.duration_s for s in schedule.steps])
        last = len(schedule.steps) - 1
        step = np.zeros(runs, dtype=np.int64)
        step_start = np.zeros(runs)
        abort_s = np.full(runs, np.inf)
        promote_s = np.full(runs, np.inf)
        harm = np.zeros(runs)
        done = np.zeros(runs, dtype=bool)
        for _ in range(schedule.n_ticks(model.tick_s)):
            w = weights[np.minimum(step, last)]
            tick = sim.tick(w)
            now = tick.t_end
            tr = tick.truth
            excess = tr.canary_requests * (
                tr.canary_error_p - tr.baseline_error_p + tr.canary_slow_p - tr.baseline_slow_p
            )
            harm += np.where(done, 0.0, excess)
            c, b = tick.canary, tick.baseline
            analysis.observe(
                now,
                {
                    "errors": CountsInterval(c.errors, c.requests, b.errors, b.requests),
                    "latency": HistogramInterval(c.buckets, b.buckets),
                },
                expected_canary_share=w,
            )
            dec = analysis.decide(now, _LONG_AGO)
            live = ~done
            aborted = live & (dec == Decision.ABORT.value)
            abort_s[aborted] = now
            elapsed = now - step_start
            ready = (dec == Decision.PROMOTE_STEP.value) & (elapsed >= self.min_step_s)
            at_max = (elapsed >= max_s[np.minimum(step, last)] - 1e-9) & np.isin(
                dec, [Decision.PROMOTE_STEP.value, Decision.CONTINUE.value]
            )
            promote = live & ~aborted & (ready | at_max)
            step = np.where(promote, step + 1, step)
            step_start = np.where(promote, now, step_start)
            finished = promote & (step > last)
            promote_s[finished] = now
            done |= aborted | finished
            if done.all():
                break
        return RunOutcomes(abort_s=abort_s, promote_s=promote_s, harm=harm)
