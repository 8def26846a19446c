"""Pods as the sampling unit: how far an identical canary's rate may sit from the baseline's.

Why: a canary is a handful of pods, and pods of one version differ (node, cache warmth, noisy
neighbours). With pod effects ``exp(u_j)``, ``u_j ~ N(0, τ²)``, an identical canary's realised
rate ratio ``R`` has ``log R ≈ N(0, τ²·(1/k + 1/N))`` for ``k`` canary and ``N`` baseline pods
(traffic-weighted effective counts). The count e-process tests "``R <= r0``"; with a small ``k``
an identical version breaks that null often. The null we want is "canary pods behave like baseline
pods", and it holds when the tested tolerance is widened to

    r0' = r0 · exp(z(1 - α₁) · τ_u · sqrt(1/k + 1/N))

with ``τ_u`` an upper ``1 - α_τ`` confidence bound of ``τ``: then
``P(false abort) <= P(τ_u < τ) + P(R > r0' | τ_u >= τ) + α₂ <= α_τ + α₁ + α₂``, the three shares of
the metric's alpha (docs/analysis.md, "Pods are the sampling unit").

How ``τ_u`` is found: from the baseline's per-pod event counts ``x_i`` and exposures ``n_i``,
``y_i = log((x_i + ½)/n_i)`` has sampling variance ``v_i ≈ 1/(x_i + ½)`` (Poisson, on the log
scale) around the pod's true log rate. Under the random-effects model the generalised ``Q``
statistic ``Q(τ²) = Σ w_i (y_i - ȳ_w)²`` with ``w_i = 1/(v_i + τ²)`` is ``χ²(N - 1)`` at the true
``τ²`` and decreases in ``τ²``, so ``{τ² : Q(τ²) >= χ²_{α_τ}(N - 1)}`` is a ``1 - α_τ`` confidence
set (the Q-profile method, Viechtbauer 2007); its upper end is ``τ_u²``. It removes the Poisson
noise, as the method of moments does (the point estimate reported is DerSimonian-Laird's), but,
unlike a plug-in of that estimate, stays honest when ``N`` is 2-20 pods: the bound is wide then.

Where there is no per-pod data (aggregate-only templates) or too few baseline events to estimate
anything, a declared spread is used, :data:`DEFAULT_POD_SPREAD` unless the template says otherwise.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

# scipy.special, not scipy.stats: the same quantiles without 50 MB of scipy.stats in the
# controller's memory (issue 13's budget is 300 MB at 1,000 Rollouts)
from scipy.special import gammaincinv, ndtri

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

DEFAULT_POD_SPREAD = 0.1
"""Declared between-pod standard deviation of log event rates when nothing better is known: pods of
one version whose error rates differ by about ±10% (one sd). Typical fleets behind one Service run
the same image on like nodes; differences much beyond that are usually a bad node or a warm-up, not
pod randomness, and are worth a look. Templates with per-pod series estimate the spread instead;
users who know their fleet is more uneven declare it (``podSpread``)."""

UNKNOWN_POD_SPREAD = 0.5
"""Spread assumed while per-pod series arrive but are too few to bound it (under 20 events a pod):
pods up to about ±50% apart, the widest spread the benchmark considers. A template that sends
per-pod series has said "measure, don't assume"; until the measure exists, assume the worst."""

DEFAULT_POD_ALPHA_SHARE = 0.5
"""Share of a metric's alpha spent on the pod draw (``α₁``, and ``α_τ`` when the spread is
estimated: half each); the rest (``α₂``) is the e-process's. Half: the widening depends on alpha
only through ``z(1 - α₁)`` (2.24 at ``α₁`` = 0.0125 against 1.96 at 0.025), the e-process only
through ``log(1/α₂)`` (0.7 nats more for half the alpha), so neither side is starved."""

MIN_EVENTS_PER_POD = 10.0
"""Mean baseline events per pod below which the spread is not estimated (the declared one is
used): the log-normal approximation of a Poisson count is poor below about ten."""

CHECKPOINTS = tuple(20.0 * 4.0**j for j in range(5))
"""Mean baseline events per pod at which the spread's bound is (re)taken: 20, 80, ..., 5120. Each
bound is taken at ``α_τ/len(CHECKPOINTS)``, so all of them hold at once with probability
``1 - α_τ`` (union bound) and the smallest so far may be used: the bound tightens as the baseline's
pods accumulate events (at ten events a pod it is 0.5 for a spread of 0 over ten pods, at 500 about
0.1), and the test never relies on one that might not cover."""

_BISECT_STEPS = 60


def effective_count(weights: ArrayLike) -> FloatArray:
    """Traffic-weighted number of pods, ``(Σw)²/Σw²`` over the last axis.

    Why: the canary's rate is the traffic-weighted mean of its pods' rates, so its variance is
    ``τ²·Σw²/(Σw)²``; ``k`` equal pods give ``k``, one pod taking most of the traffic gives ~1.
    Pods with no (or NaN) traffic count for nothing.
    """
    w = np.asarray(weights, dtype=np.float64)
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    total = w.sum(axis=-1)
    sq = (w * w).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sq > 0, total * total / np.where(sq > 0, sq, 1.0), 0.0)
    return np.asarray(out, dtype=np.float64)


def _q(tau2: FloatArray, y: FloatArray, v: FloatArray, mask: BoolArray) -> FloatArray:
    w = np.where(mask, 1.0 / (v + tau2[..., None]), 0.0)
    mean = (w * y).sum(axis=-1) / w.sum(axis=-1)
    return np.asarray((w * (y - mean[..., None]) ** 2).sum(axis=-1), dtype=np.float64)


def estimate_spread(
    events: ArrayLike, exposure: ArrayLike, *, alpha: float
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Point estimate, upper ``1 - alpha`` bound of the between-pod spread ``τ``, and whether the
    data were enough to estimate it at all (per run).

    ``events`` and ``exposure`` are the baseline's per-pod counts, shape ``(batch, N)`` (or
    ``(N,)``). Pods with no exposure or a NaN are left out. Runs with fewer than two usable pods or
    fewer than :data:`MIN_EVENTS_PER_POD` events per pod on average are not informative: their
    bound is infinite and the caller must fall back to a declared spread.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    x = np.atleast_2d(np.asarray(events, dtype=np.float64))
    n = np.atleast_2d(np.asarray(exposure, dtype=np.float64))
    if x.shape != n.shape:
        raise ValueError(f"per-pod events {x.shape} and exposure {n.shape} differ in shape")
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(x) & np.isfinite(n) & (x >= 0) & (n > 0)
    x = np.where(mask, x, 0.0)
    n = np.where(mask, n, 1.0)
    pods = mask.sum(axis=-1)
    informative = (pods >= 2) & (x.sum(axis=-1) >= MIN_EVENTS_PER_POD * np.maximum(pods, 1))
    y = np.log((x + 0.5) / n)
    v = 1.0 / (x + 0.5)

    # DerSimonian-Laird (method of moments) point estimate.
    zero = np.zeros(x.shape[0])
    q0 = _q(zero, y, v, mask)
    w0 = np.where(mask, 1.0 / v, 0.0)
    c = w0.sum(axis=-1) - (w0 * w0).sum(axis=-1) / np.maximum(w0.sum(axis=-1), 1e-300)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau2_hat = np.maximum(0.0, (q0 - (pods - 1)) / np.where(c > 0, c, np.inf))

    # Q-profile upper bound: Q(τ²) decreases in τ²; the bound is where it meets the lower
    # alpha-quantile of χ²(N - 1).
    crit = np.where(pods >= 2, 2.0 * gammaincinv(np.maximum(pods - 1, 1) / 2.0, alpha), np.inf)
    lo = np.zeros(x.shape[0])
    spread_y = np.where(mask, y, np.nan)
    span = np.nanmax(spread_y, axis=-1, initial=-np.inf) - np.nanmin(
        spread_y, axis=-1, initial=np.inf
    )
    hi = np.maximum(1.0, np.where(np.isfinite(span), span, 0.0) ** 2 * 1e4)
    above = q0 > crit  # else the bound is 0
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        go_up = _q(mid, y, v, mask) > crit
        lo = np.where(go_up, mid, lo)
        hi = np.where(go_up, hi, mid)
    tau2_up = np.where(above, hi, 0.0)
    upper = np.where(informative, np.sqrt(tau2_up), np.inf)
    point = np.where(informative, np.sqrt(tau2_hat), np.nan)
    return point, upper, informative


def widened_tolerance(
    tolerance: float,
    spread: ArrayLike,
    canary_pods: ArrayLike,
    *,
    alpha: float,
    baseline_pods: ArrayLike | None = None,
) -> FloatArray:
    """``r0' = r0 · exp(z(1 - alpha) · τ · sqrt(1/k + 1/N))`` per run.

    ``baseline_pods=None`` (aggregate-only templates) leaves out the ``1/N`` term: a baseline is
    usually the larger fleet, and the declared spread carries the margin. ``k`` below 1 (a canary
    pod with part of the traffic still counts as one pod at most) is taken as 1.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive ratio, got {tolerance}")
    tau = np.asarray(spread, dtype=np.float64)
    k = np.maximum(np.asarray(canary_pods, dtype=np.float64), 1.0)
    var = 1.0 / k
    if baseline_pods is not None:
        nb = np.asarray(baseline_pods, dtype=np.float64)
        var = var + np.where(nb >= 1, 1.0 / np.maximum(nb, 1.0), 0.0)
    z = float(-ndtri(alpha))
    with np.errstate(over="ignore"):
        return np.asarray(tolerance * np.exp(z * tau * np.sqrt(var)), dtype=np.float64)


class PodTolerance:
    """The widened tolerance of one count metric over a batch of runs, applied interval by interval.

    The e-process itself is left at ``r0``: testing ``R <= r0·c`` on exposures ``(n_c, n_b)`` is the
    same likelihood as testing ``R/c <= r0`` on ``(c·n_c, n_b)``, so :meth:`scale` gives the factor
    ``c = r0'/r0`` by which the canary's exposure is multiplied (per run, per interval). Each
    interval's factor is fixed by data the test conditions on (exposures and the baseline's
    per-pod dispersion, not the canary/baseline split of events), so the product of the intervals'
    likelihood ratios stays a supermartingale whenever every interval's null holds.

    The spread is the declared one (``spread``), or, when ``spread`` is None, the upper confidence
    bound estimated from the baseline's per-pod counts accumulated since the start (warm-up
    included); until those counts reach the first of :data:`CHECKPOINTS`,
    :data:`UNKNOWN_POD_SPREAD` stands in (:data:`DEFAULT_POD_SPREAD` while no per-pod counts came). The bound is re-taken at each checkpoint with a share of
    ``α_τ`` and the smallest so far is used: all hold at once, so every interval's null holds.
    """

    def __init__(
        self,
        *,
        tolerance: float,
        alpha: float,
        batch: int,
        canary_pods: float,
        spread: float | None = None,
        share: float = DEFAULT_POD_ALPHA_SHARE,
    ) -> None:
        if not 0.0 < share < 1.0:
            raise ValueError(f"pod alpha share must be in (0, 1), got {share}")
        if not (math.isfinite(canary_pods) and canary_pods >= 1):
            raise ValueError(f"canary_pods must be >= 1, got {canary_pods}")
        if spread is not None and not (math.isfinite(spread) and spread >= 0):
            raise ValueError(f"pod spread must be >= 0, got {spread}")
        self.tolerance = float(tolerance)
        self.alpha = float(alpha)
        self.batch = int(batch)
        self.canary_pods = float(canary_pods)
        self.declared = spread
        self.share = float(share)
        estimating = spread is None
        # alpha_1 (pod draw), alpha_tau (the bound's miss), alpha_2 (the e-process)
        pod_alpha = self.share * self.alpha if (estimating or spread) else 0.0
        self.alpha_draw = pod_alpha / 2 if estimating else pod_alpha
        self.alpha_spread = pod_alpha / 2 if estimating else 0.0
        self.test_alpha = self.alpha - pod_alpha
        start = DEFAULT_POD_SPREAD if spread is None else spread
        self._spread = np.full(self.batch, start)
        self._estimate = np.full(self.batch, np.nan)
        self._estimated = np.zeros(self.batch, dtype=bool)
        self._checkpoint = np.zeros(self.batch, dtype=np.int64)  # next of CHECKPOINTS per run
        self._k = np.full(self.batch, self.canary_pods)
        self._n = np.full(self.batch, np.nan)  # baseline pods behind the estimate
        self._pod_events: FloatArray | None = None
        self._pod_exposure: FloatArray | None = None
        self._scale = np.ones(self.batch)
        self._raw_canary_exposure = np.zeros(self.batch)

    def observe_baseline_pods(self, events: ArrayLike, exposure: ArrayLike) -> None:
        """Add one interval's baseline per-pod counts (shape ``(batch, N)``); estimate the spread
        for runs that have just become informative. A change in the number of pods restarts the
        accumulation (pods are matched by position)."""
        if self.declared is not None:
            return
        x = np.asarray(events, dtype=np.float64).reshape(self.batch, -1)
        n = np.asarray(exposure, dtype=np.float64).reshape(self.batch, -1)
        if x.shape != n.shape:
            raise ValueError(f"baseline per-pod events {x.shape} and totals {n.shape} differ")
        x = np.where(np.isfinite(x) & (x >= 0), x, 0.0)
        n = np.where(np.isfinite(n) & (n >= 0), n, 0.0)
        self._spread = np.where(
            self._estimated, self._spread, np.maximum(self._spread, UNKNOWN_POD_SPREAD)
        )
        if self._pod_events is None or self._pod_events.shape != x.shape:
            self._pod_events, self._pod_exposure = x.copy(), n.copy()
        else:
            assert self._pod_exposure is not None
            self._pod_events += x
            self._pod_exposure += n
        pods = (self._pod_exposure > 0).sum(axis=-1)
        per_pod = self._pod_events.sum(axis=-1) / np.maximum(pods, 1)
        marks = np.asarray((*CHECKPOINTS, math.inf))
        todo = per_pod >= marks[np.minimum(self._checkpoint, len(CHECKPOINTS))]
        if not todo.any():
            return
        point, upper, ok = estimate_spread(
            self._pod_events, self._pod_exposure, alpha=self.alpha_spread / len(CHECKPOINTS)
        )
        now = todo & ok
        tighter = now & (~self._estimated | (upper < self._spread))
        self._spread = np.where(tighter, upper, self._spread)
        self._n = np.where(tighter, pods, self._n)
        self._estimate = np.where(now, point, self._estimate)
        self._estimated |= now
        # past every checkpoint the accumulated counts have reached (one bound per crossing)
        self._checkpoint = np.where(
            todo, np.searchsorted(marks, per_pod, side="right"), self._checkpoint
        )

    def scale(
        self, canary_total: ArrayLike, canary_pod_total: ArrayLike | None = None
    ) -> FloatArray:
        """This interval's factor ``c = r0'/r0`` per run (multiply the canary's exposure by it).

        ``canary_pod_total`` (per-pod canary requests, ``(batch, k)``) lowers ``k`` to the
        traffic-weighted count when the canary's traffic is uneven; ``k`` never rises above the
        declared canary pod count.
        """
        if canary_pod_total is not None:
            w = np.asarray(canary_pod_total, dtype=np.float64).reshape(self.batch, -1)
            k_eff = effective_count(w)
            self._k = np.where(k_eff > 0, np.minimum(self.canary_pods, k_eff), self.canary_pods)
        else:
            self._k = np.full(self.batch, self.canary_pods)
        if self.alpha_draw > 0:
            r = widened_tolerance(
                self.tolerance,
                self._spread,
                self._k,
                alpha=self.alpha_draw,
                baseline_pods=np.where(self._estimated, self._n, 0.0),
            )
            self._scale = r / self.tolerance
        nc = np.asarray(canary_total, dtype=np.float64)
        self._raw_canary_exposure += np.where(np.isfinite(nc) & (nc > 0), nc, 0.0)
        return self._scale.copy()

    @property
    def widened(self) -> FloatArray:
        """The tolerance the last interval was tested at, per run."""
        return self.tolerance * self._scale

    def details(self, index: int) -> dict[str, float | bool | None]:
        """What status shows: the spread used, whether estimated, k, N and r0'."""
        n = float(self._n[index])
        est = float(self._estimate[index])
        return {
            "pod_spread": float(self._spread[index]),
            "pod_spread_estimate": est if math.isfinite(est) else None,
            "pod_spread_estimated": bool(self._estimated[index]),
            "canary_pods": float(self._k[index]),
            "baseline_pods": n if math.isfinite(n) else None,
            "widened_tolerance": float(self.widened[index]),
        }

    def to_state(self) -> dict[str, object]:
        if self.batch != 1:
            raise ValueError("to_state is for a single run (batch == 1)")
        ev = None if self._pod_events is None else [float(v) for v in self._pod_events[0]]
        ex = None if self._pod_exposure is None else [float(v) for v in self._pod_exposure[0]]
        return {
            "spread": float(self._spread[0]),
            "estimate": None if not math.isfinite(self._estimate[0]) else float(self._estimate[0]),
            "estimated": bool(self._estimated[0]),
            "checkpoint": int(self._checkpoint[0]),
            "baseline_pods": None if not math.isfinite(self._n[0]) else float(self._n[0]),
            "canary_pods": float(self._k[0]),
            "scale": float(self._scale[0]),
            "raw_canary_exposure": float(self._raw_canary_exposure[0]),
            "pod_events": ev,
            "pod_exposure": ex,
        }

    def restore(self, state: dict[str, object]) -> None:
        """Load :meth:`to_state` into this (batch 1) object built from the same spec."""

        def num(key: str) -> float:
            v = state.get(key)
            return math.nan if v is None else float(v)  # type: ignore[arg-type]

        self._spread[0] = num("spread")
        self._estimate[0] = num("estimate")
        self._estimated[0] = bool(state.get("estimated"))
        self._checkpoint[0] = int(num("checkpoint")) if state.get("checkpoint") is not None else 0
        self._n[0] = num("baseline_pods")
        self._k[0] = num("canary_pods")
        self._scale[0] = num("scale")
        self._raw_canary_exposure[0] = num("raw_canary_exposure")
        ev, ex = state.get("pod_events"), state.get("pod_exposure")
        if isinstance(ev, list) and isinstance(ex, list):
            self._pod_events = np.asarray([ev], dtype=np.float64)
            self._pod_exposure = np.asarray([ex], dtype=np.float64)

    @property
    def raw_canary_exposure(self) -> FloatArray:
        """The canary's exposure as measured (the e-process sees it scaled)."""
        return self._raw_canary_exposure.copy()
