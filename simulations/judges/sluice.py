"""Sluice itself: the real :class:`analysis.stats.policy.RolloutAnalysis`, driving the weights.

Sluice may promote a step as soon as its confidence sequence shows the canary within tolerance,
which changes the canary's weight and therefore the data it sees next; so unlike the other judges
it runs on its own simulation, one interval at a time, each run at its own step.

Where the policy is built (so that new statistics options can be wired in with small edits):
:meth:`SluiceJudge.specs` builds the :class:`MetricSpec` of each metric (``errors_options`` and
``latency_options`` are extra keyword arguments passed through to it), :meth:`SluiceJudge.config`
the :class:`PolicyConfig` (``policy_options`` likewise), and :meth:`SluiceJudge.interval_data`
what each observation hands to ``RolloutAnalysis.observe`` (aggregate series, or per-pod series
with ``per_pod=True`` once the policy takes them).

Adapter note: ``RolloutAnalysis.decide`` takes one ``step_started_at`` for the whole batch, while
here every run has its own step start. The adapter therefore asks for two decisions per look,
"in the middle of a step" and "at the step's maximum duration" (a config whose maximum is 1 s,
asked with the step started now and 1 s ago), and takes, per run, the one that applies to it; it
applies the minimum step duration itself. So the policy's own rules decide at the maximum duration
(``on_max_duration``, "promote" by default here: promote with a warning when there is enough
data and no sample-ratio mismatch), and any change to those rules reaches the benchmark unedited.
A run is *paused* at the first look whose applicable decision is INCONCLUSIVE (a person is
called); the adapter records when. With ``stop_at_pause`` the run ends there, as a step analysis
that ends inconclusive leaves the rollout paused (neither aborted nor promoted); without it the
run keeps observing, as the classic benchmark has always done.

``window_s`` (background analysis): one observation per window of that length, ending at
``window_offset_s + k·window_s``, with the window's counts summed; a window can then straddle a
weight change. The expected canary share of such a window is the time-average of the weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

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
    IntervalData,
    MetricSpec,
    PolicyConfig,
    RolloutAnalysis,
)
from simulations.latency import bin_probabilities, transformed_cdf
from simulations.metrics import RunOutcomes
from simulations.schedule import WeightSchedule
from simulations.traffic import Arm, Simulator, TrafficModel

#: ``(name, value)`` pairs: hashable, so a judge can be part of a benchmark condition.
Options = tuple[tuple[str, Any], ...]


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
    on_max_duration: Literal["promote", "pause"] = "promote"
    errors_options: Options = ()
    latency_options: Options = ()
    policy_options: Options = ()
    per_pod: bool = False
    window_s: float | None = None
    window_offset_s: float = 0.0
    stop_at_pause: bool = False

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
        """The one place the metrics are specified; ``*_options`` override or add arguments."""
        a_err = self.alpha * self.errors_alpha_share
        edges = tuple(latency_edges(model, self.edge_quantiles, self.slo_edge))
        weights = self.edge_weights or slo_edge_weights(
            edges, slo_bucket(model) if self.slo_edge else None, self.quantile_edge_weight
        )
        errors: dict[str, Any] = {
            "tolerance": self.tolerance,
            "alpha": a_err,
            "prior_scales": self.prior_scales,
            "accept_prior_scales": self.accept_prior_scales,
            "promote_tolerance": self.promote_tolerance,
        }
        latency: dict[str, Any] = {
            **errors,
            "alpha": self.alpha - a_err,
            "bucket_bounds": (*model.bounds, float("inf")),
            "edges": edges,
            "edge_weights": weights,
        }
        return [
            MetricSpec("errors", "counts", **{**errors, **dict(self.errors_options)}),
            MetricSpec("latency", "histogram", **{**latency, **dict(self.latency_options)}),
        ]

    def config(self) -> PolicyConfig:
        """The policy's knobs; the step clock is the adapter's (see the module docstring)."""
        base: dict[str, Any] = {
            "alpha": self.alpha,
            "warmup_seconds": self.warmup_s,
            "min_step_seconds": 0.0,
            "max_step_seconds": 1.0,
            "on_max_duration": self.on_max_duration,
        }
        return PolicyConfig(**{**base, **dict(self.policy_options)})

    def interval_data(self, canary: Arm, baseline: Arm) -> Mapping[str, IntervalData]:
        """What one observation hands to ``RolloutAnalysis.observe``, per metric.

        ``per_pod`` passes the errors metric's counts per pod, ``(runs, pods)``, for a policy
        that takes pods as the sampling unit; the aggregate otherwise (all today's policy takes).
        """
        c, b = canary, baseline
        if self.per_pod:
            errors = CountsInterval(c.pod_errors, c.pod_requests, b.pod_errors, b.pod_requests)
        else:
            errors = CountsInterval(c.errors, c.requests, b.errors, b.requests)
        return {"errors": errors, "latency": HistogramInterval(c.buckets, b.buckets)}

    def run(
        self, model: TrafficModel, schedule: WeightSchedule, runs: int, seed: int
    ) -> RunOutcomes:
        """Simulate ``runs`` rollouts under Sluice's control and score them."""
        rng = np.random.default_rng(seed)
        sim = Simulator(model, runs, rng, schedule.duration_s)
        analysis = RolloutAnalysis(self.specs(model), self.config(), batch=runs, t0=0.0)
        weights = np.array([s.weight for s in schedule.steps])
        max_s = np.array([s.duration_s for s in schedule.steps])
        last = len(schedule.steps) - 1
        step = np.zeros(runs, dtype=np.int64)
        step_start = np.zeros(runs)
        abort_s = np.full(runs, np.inf)
        promote_s = np.full(runs, np.inf)
        pause_s = np.full(runs, np.inf)
        harm = np.zeros(runs)
        done = np.zeros(runs, dtype=bool)
        window = _Window(runs, self.window_s, self.window_offset_s)
        for _ in range(schedule.n_ticks(model.tick_s)):
            w = weights[np.minimum(step, last)]
            tick = sim.tick(w)
            now = tick.t_end
            tr = tick.truth
            excess = tr.canary_requests * (
                tr.canary_error_p - tr.baseline_error_p + tr.canary_slow_p - tr.baseline_slow_p
            )
            harm += np.where(done, 0.0, excess)
            window.add(tick.canary, tick.baseline, w, model.tick_s)
            if window.ends_at(now):
                c, b, share = window.take()
                analysis.observe(now, self.interval_data(c, b), expected_canary_share=share)
            elapsed = now - step_start
            at_max = elapsed >= max_s[np.minimum(step, last)] - 1e-9
            dec = analysis.decide(now, now)
            if at_max.any():
                dec = np.where(at_max, analysis.decide(now, now - 1.0), dec)
            live = ~done
            aborted = live & (dec == Decision.ABORT.value)
            abort_s[aborted] = now
            paused = live & (dec == Decision.INCONCLUSIVE.value) & ~np.isfinite(pause_s)
            pause_s[paused] = now
            ready = (dec == Decision.PROMOTE_STEP.value) & ((elapsed >= self.min_step_s) | at_max)
            promote = live & ~aborted & ready
            step = np.where(promote, step + 1, step)
            step_start = np.where(promote, now, step_start)
            finished = promote & (step > last)
            promote_s[finished] = now
            done |= aborted | finished | (paused & self.stop_at_pause)
            if done.all():
                break
        return RunOutcomes(abort_s=abort_s, promote_s=promote_s, harm=harm, pause_s=pause_s)


class _Window:
    """Sums of the ticks since the last observation (one tick per window when ``window_s`` is
    None); a window with no scraped tick is missing (NaN), never zero."""

    def __init__(self, runs: int, window_s: float | None, offset_s: float) -> None:
        if window_s is not None and window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        self.offset_s = offset_s
        self._arms: list[tuple[Arm, Arm]] = []
        self._share = np.zeros(runs)
        self._span = 0.0

    def add(self, canary: Arm, baseline: Arm, weight: Any, tick_s: float) -> None:
        self._arms.append((canary, baseline))
        self._share = self._share + np.asarray(weight, dtype=float) * tick_s
        self._span += tick_s

    def ends_at(self, t: float) -> bool:
        if self.window_s is None:
            return True
        k = (t - self.offset_s) / self.window_s
        return abs(k - round(k)) < 1e-9

    def take(self) -> tuple[Arm, Arm, Any]:
        arms, share = self._arms, self._share / self._span
        self._arms, self._share, self._span = [], np.zeros_like(self._share), 0.0
        if len(arms) == 1:
            return arms[0][0], arms[0][1], share
        return _sum_arms([a[0] for a in arms]), _sum_arms([a[1] for a in arms]), share


def _sum_arms(arms: list[Arm]) -> Arm:
    def total(name: str) -> Any:
        x = np.stack([getattr(a, name) for a in arms])
        return np.where(np.isnan(x).all(axis=0), np.nan, np.nansum(x, axis=0))

    return Arm(*(total(f) for f in Arm.__dataclass_fields__))
