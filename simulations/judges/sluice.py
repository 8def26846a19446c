"""Sluice itself: the real :class:`analysis.stats.policy.RolloutAnalysis`, driving the weights.

Sluice may promote a step as soon as its confidence sequence shows the canary within tolerance,
which changes the canary's weight and therefore the data it sees next; so unlike the other judges
it runs on its own simulation, one interval at a time, each run at its own step.

Where the policy is built (so that new statistics options can be wired in with small edits):
:meth:`SluiceJudge.specs` builds the :class:`MetricSpec` of each metric (``errors_options`` and
``latency_options`` are extra keyword arguments passed through to it), :meth:`SluiceJudge.config`
the :class:`PolicyConfig` (``policy_options`` likewise), and :meth:`SluiceJudge.interval_data`
what each observation hands to ``RolloutAnalysis.observe`` (aggregate series, or per-pod series
with ``per_pod=True``).

The statistics options of issue 12 are wired here, as the controller's run loop
(:mod:`analysis.run_loop`) uses them:

- ``pod_model=True`` (the default, as in the product): pods as the sampling unit over aggregate
  series. The errors metric gets ``canary_pods`` = the model's canary pod count and no
  ``pod_spread``, and each interval hands it the aggregate counts; with no per-pod counts to
  estimate from, the policy widens the tolerance by
  :data:`~analysis.stats.pod_spread.DEFAULT_POD_SPREAD` (0.1) for that many pods. This is what the
  controller runs for a sequential counts compare whose queries are ``sum(...)``, not
  ``sum by (pod)``: ``analysis.lifecycle._with_pods`` sets ``compare.canaryPods`` from the
  Rollout's canary pods, and the template declares no ``podSpread``. ``pod_model=False`` is the
  opt-out, ``podModel: false``: requests as the sampling unit, the tolerance not widened.
- ``per_pod=True`` (needs ``pod_model``): the same with per-pod series, as a template with
  ``sum by (pod)`` queries: per-pod counts every interval, and before the rollout the pod model is
  given the baseline's per-pod counts of ``pod_history_s`` (an hour, the run loop's
  ``POD_HISTORY_SECONDS``) through ``RolloutAnalysis.calibrate_pods``, so the spread is estimated.
  ``declared_spread=True`` declares ``pod_spread`` = the model's true pod spread instead.
- ``latency_increase``: the latency metric's tolerance in latency units (0.1: 10% slower),
  tolerance ratio 1, edges near the baseline's ``tail_quantiles(latency_quantile)`` chosen with
  ``choose_edges(..., latency_increase=...)``, no SLO edge, equal edge weights (the run loop's
  choice).

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
``window_offset_s + k·window_s``, with the window's counts summed. A window is cut where a run's
weight changes, as the run loop cuts at ``status.weightChangedAt``: the piece before the change is
observed at the change with its own weight as the expected share, the rest at the window's end
(each run is cut at its own changes, since each run promotes at its own time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from analysis.run_loop import EDGE_LOOKBACK, STRETCH_LOOKBACK
from analysis.stats.count_eprocess import (
    DEFAULT_ACCEPT_SCALES,
    DEFAULT_PRIOR_SCALES,
    DEFAULT_TOLERANCE,
)
from analysis.stats.histogram import (
    choose_edges,
    slo_edge_weights,
    stretch_tolerances,
    tail_quantiles,
)
from analysis.stats.pod_spread import DEFAULT_POD_SPREAD
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
from simulations.traffic import Arm, BoolArray, FloatArray, Simulator, TrafficModel

#: ``(name, value)`` pairs: hashable, so a judge can be part of a benchmark condition.
Options = tuple[tuple[str, Any], ...]


def slo_bucket(model: TrafficModel) -> float:
    """The bucket bound ``choose_edges`` takes for the SLO."""
    return float(next(b for b in model.bounds if b >= model.slo_s))


def _pre_rollout_counts(model: TrafficModel, seconds: float = EDGE_LOOKBACK) -> np.ndarray:
    """The baseline's cumulative bucket counts before the rollout: expected counts of the run
    loop's lookback of stable traffic, as its pre-rollout query sees them."""
    bounds = np.asarray(model.bounds)
    p = bin_probabilities(transformed_cdf(model.latency, bounds, np.ones(1)))[0]
    return np.asarray(np.cumsum(p) * model.total_rps * seconds)


def latency_edges(
    model: TrafficModel,
    quantiles: tuple[float, ...] = (0.9, 0.99),
    slo: bool = True,
    latency_increase: float | None = None,
) -> list[float]:
    """Edges frozen before the rollout from the baseline's histogram, as the run loop derives
    them from a pre-rollout query."""
    counts = _pre_rollout_counts(model)
    return choose_edges(
        (*model.bounds, np.inf),
        counts,
        quantiles=quantiles,
        slo=model.slo_s if slo else None,
        latency_increase=latency_increase,
    )


def latency_edge_tolerances(
    model: TrafficModel, edges: tuple[float, ...], latency_increase: float
) -> tuple[float | None, ...]:
    """The run loop's per-edge ratios for a latency tolerance, from the same pre-rollout counts."""
    return stretch_tolerances(
        (*model.bounds, np.inf),
        _pre_rollout_counts(model, STRETCH_LOOKBACK),
        edges,
        latency_increase,
    )


@dataclass(frozen=True)
class SluiceJudge:
    """Sluice's default policy: errors and latency metrics, the default tolerance, alpha 0.05,
    and (``pod_model``) the canary's pods as the errors metric's sampling unit, as the controller
    judges a sequential counts compare by default."""

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
    pod_model: bool = True  # canary_pods set even with aggregate series (the product default)
    per_pod: bool = False  # per-pod series, the spread estimated from the baseline's pods
    declared_spread: bool = False
    pod_history_s: float = 3600.0
    latency_increase: float | None = None
    latency_quantile: float = 0.9
    window_s: float | None = None
    window_offset_s: float = 0.0
    stop_at_pause: bool = False

    def __post_init__(self) -> None:
        if self.per_pod and not self.pod_model:
            raise ValueError("per_pod needs pod_model (per-pod series are for the pod model)")
        if self.declared_spread and not self.per_pod:
            raise ValueError("declared_spread needs per_pod (the families declare it there)")
        if self.latency_increase is not None and not self.latency_increase > 0:
            raise ValueError(f"latency_increase must be > 0, got {self.latency_increase}")
        if not self.pod_history_s >= 0:
            raise ValueError(f"pod_history_s must be >= 0, got {self.pod_history_s}")

    def describe(self) -> str:
        """The settings, for the report (so it never disagrees with what was run)."""
        share = f"{self.errors_alpha_share:g}/{1 - self.errors_alpha_share:g}"
        if self.latency_increase is None:
            latency = (
                f"latency edges at the baseline's "
                f"p{'/p'.join(f'{100 * q:g}' for q in self.edge_quantiles)}"
                f"{' and the SLO (weighted ' + f'{self.quantile_edge_weight:g}:1)' if self.slo_edge else ''}"
            )
        else:
            latency = (
                f"latency may grow by {self.latency_increase:.0%} (edges near the baseline's "
                f"p{'/p'.join(f'{100 * q:g}' for q in tail_quantiles(self.latency_quantile))})"
            )
        return (
            f"α {self.alpha:g} split {share} between errors and latency, tolerance "
            f"{self.tolerance:g}, prior scales {'/'.join(f'{x:g}' for x in self.prior_scales)}, "
            f"{self.describe_pods()}, {latency}, {self.warmup_s:g} s warm-up"
        )

    def describe_pods(self) -> str:
        """What the errors metric takes as its sampling unit, in the report's words."""
        if not self.pod_model:
            return "errors judged per request (`podModel: false`, tolerance not widened)"
        if not self.per_pod:
            return (
                "errors judged with the canary's pods as the sampling unit over aggregate series "
                f"(`canaryPods` = the canary's pods, the default spread {DEFAULT_POD_SPREAD:g})"
            )
        if self.declared_spread:
            return "errors judged per pod over per-pod series (`podSpread` declared at the true σ)"
        return (
            "errors judged per pod over per-pod series (spread estimated from the baseline's pods"
            f"{f', {self.pod_history_s / 60:g} min of history' if self.pod_history_s else ''})"
        )

    def specs(self, model: TrafficModel) -> list[MetricSpec]:
        """The one place the metrics are specified; ``*_options`` override or add arguments."""
        a_err = self.alpha * self.errors_alpha_share
        common: dict[str, Any] = {
            "tolerance": self.tolerance,
            "prior_scales": self.prior_scales,
            "accept_prior_scales": self.accept_prior_scales,
            "promote_tolerance": self.promote_tolerance,
        }
        errors: dict[str, Any] = {**common, "alpha": a_err}
        if self.pod_model:
            # as the controller: compare.canaryPods from the Rollout; pod_spread None, so
            # estimated from per-pod series when they come (per_pod), else DEFAULT_POD_SPREAD
            errors["canary_pods"] = float(model.canary_pods)
            if self.declared_spread:
                errors["pod_spread"] = model.nuisances.pod_log_sd
        latency: dict[str, Any] = {
            **common,
            "alpha": self.alpha - a_err,
            "bucket_bounds": (*model.bounds, float("inf")),
        }
        if self.latency_increase is None:
            edges = tuple(latency_edges(model, self.edge_quantiles, self.slo_edge))
            latency["edges"] = edges
            latency["edge_weights"] = self.edge_weights or slo_edge_weights(
                edges, slo_bucket(model) if self.slo_edge else None, self.quantile_edge_weight
            )
        else:
            # the run loop's latency tolerance: ratio 1 at the stretched points, the tail's
            # quantiles from the baseline's own histogram, no SLO edge, equal edge weights
            quantiles = tail_quantiles(self.latency_quantile)
            edges = tuple(
                latency_edges(model, quantiles, slo=False, latency_increase=self.latency_increase)
            )
            latency["edges"] = edges
            latency["edge_tolerances"] = latency_edge_tolerances(
                model, edges, self.latency_increase
            )
            latency["edge_weights"] = self.edge_weights
            latency["tolerance"] = 1.0
            latency["promote_tolerance"] = None
            latency["latency_increase"] = self.latency_increase
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

        ``per_pod`` passes the errors metric's counts per pod, ``(runs, pods)``, to the pod
        model (the policy sums them into the aggregate); the aggregate otherwise.
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
        if self.per_pod and self.pod_history_s > 0 and not self.declared_spread:
            # the hour before the rollout, as the run loop reads it (its own random stream)
            events, requests = sim.baseline_history(
                self.pod_history_s, np.random.default_rng([seed, 1])
            )
            analysis.calibrate_pods("errors", events, requests)
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
            # a run whose weight changed: the piece before the change, observed at the change
            for c, b, share in window.add(tick.canary, tick.baseline, w):
                analysis.observe(
                    now - model.tick_s, self.interval_data(c, b), expected_canary_share=share
                )
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


Piece = tuple[Arm, Arm, FloatArray]
"""Canary and baseline counts of a window (or of its part before a weight change), NaN for runs
without data, and each run's expected canary share."""


class _Window:
    """Running sums of the ticks since each run's last observation (one tick per window when
    ``window_s`` is None); a window with no scraped tick is missing (NaN), never zero.

    Every run's open piece has one weight: a tick at another weight first cuts the run's piece
    off (:meth:`add` returns it, to be observed at the change), as the run loop splits a window
    at ``status.weightChangedAt``. Why: the count tests take a window's canary share as constant;
    a window over a weight change mixes two shares, and a shared rate that changes in time (an
    incident in its second half) then lands on the arm that had more traffic at the time.
    """

    def __init__(self, runs: int, window_s: float | None, offset_s: float) -> None:
        if window_s is not None and window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        self.offset_s = offset_s
        self._canary: Arm | None = None
        self._baseline: Arm | None = None
        self._weight = np.full(runs, np.nan)  # the open piece's weight per run; NaN: empty

    def add(self, canary: Arm, baseline: Arm, weight: Any) -> list[Piece]:
        """Add one tick; returns what its weight change cut off (at most one piece, of the runs
        whose weight differs from their open piece's), to be observed at the tick's start."""
        w = np.broadcast_to(np.asarray(weight, dtype=float), self._weight.shape)
        out: list[Piece] = []
        changed = np.isfinite(self._weight) & (w != self._weight)
        if changed.any():
            out.append(self._take(changed))
        self._canary = canary if self._canary is None else _add_arms(self._canary, canary)
        self._baseline = baseline if self._baseline is None else _add_arms(self._baseline, baseline)
        self._weight = np.where(np.isfinite(self._weight), self._weight, w)
        return out

    def ends_at(self, t: float) -> bool:
        if self.window_s is None:
            return True
        k = (t - self.offset_s) / self.window_s
        return abs(k - round(k)) < 1e-9

    def take(self) -> Piece:
        """Every run's open piece (the window's end)."""
        return self._take(np.ones(self._weight.shape, dtype=bool))

    def _take(self, runs: BoolArray) -> Piece:
        assert self._canary is not None and self._baseline is not None
        share = np.where(runs, self._weight, np.nan)
        piece = (_only(self._canary, runs), _only(self._baseline, runs), share)
        keep = ~runs
        self._canary = _only(self._canary, keep)
        self._baseline = _only(self._baseline, keep)
        self._weight = np.where(runs, np.nan, self._weight)
        return piece


def _add_arms(a: Arm, b: Arm) -> Arm:
    """Sums of two arms' counts; NaN only where both are NaN (a scrape gap adds nothing)."""

    def add(x: Any, y: Any) -> Any:
        return np.where(np.isnan(x), y, np.where(np.isnan(y), x, x + y))

    return Arm(*(add(getattr(a, f), getattr(b, f)) for f in Arm.__dataclass_fields__))


def _only(arm: Arm, runs: BoolArray) -> Arm:
    """The arm with the runs outside ``runs`` made missing."""

    def mask(x: Any) -> Any:
        m = runs.reshape(runs.shape + (1,) * (np.ndim(x) - 1))
        return np.where(m, x, np.nan)

    return Arm(*(mask(getattr(arm, f)) for f in Arm.__dataclass_fields__))
