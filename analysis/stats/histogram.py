"""Latency regressions from Prometheus histogram buckets, as exceedance rate ratios.

Why exceedances: a request slower than an edge is an event, and "canary requests exceed the edge
``r`` times as often as baseline requests" is a count question the conditional e-process answers
exactly, with all the shared nuisances cancelling. A few edges (near the baseline's p90 and p99 and
the SLO) catch both shifts and tail-only regressions. The edges' e-values are averaged with fixed
weights (each edge's share of alpha, equal by default): a valid e-process for "no edge worse than
the tolerance" that rejects whenever the per-edge Bonferroni rule would, and sooner when a
regression moves several edges at once.
Edges are frozen from the baseline *before* the rollout, so choosing them cannot peek at the canary.

Latency tolerance in latency units (``latency_increase`` = x, "latency may grow by x"): at each
edge ``e`` the canary's requests slower than ``e`` are compared with the baseline's requests slower
than ``e/(1+x)``, with ratio tolerance 1. The null at the edge is ``S_c(e) <= S_b(e/(1+x))``
(``S`` the fraction slower than a point): the canary's quantile at that level is at most ``1+x``
times the baseline's. A canary whose latency is the baseline's stretched by less than ``x``
(``L_c = (1+d)·L_b``, ``d <= x``) satisfies it at every edge, whatever the distribution. The
baseline's point ``e/(1+x)`` is usually inside a bucket: its count there is interpolated linearly
(as Prometheus' ``histogram_quantile`` does). Where the latency density does not increase across
that bucket (the bucket lies above the mode: checked when the edges are chosen) the CDF is concave
there, so the straight line *over*-counts the baseline's slow requests: the test is conservative.
Fractional counts keep validity too: with requests independent given the interval's request
counts, the e-process factor has expectation ``<= 1`` for a baseline count of the form
``A + w·B`` (``0 <= w <= 1``), since ``κ^w <= 1 + w(κ - 1)`` for ``κ < 1`` (docs/analysis.md).
On Prometheus' default buckets that interpolation allows far more than ``x`` (a 25% slowdown
passed), so where the stable traffic before the rollout shows the tail's slope around an edge,
the edge instead compares canary and baseline at the edge itself with a ratio ``(1+x)^ε`` frozen
from that slope (:func:`stretch_tolerances`, which says what it assumes); a latency tolerance also
takes the bound beyond its rarest edge, where a tail regression of a few percent of requests shows
first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaincinv, logsumexp

from analysis.stats.count_eprocess import (
    DEFAULT_ACCEPT_SCALES,
    DEFAULT_PRIOR_SCALES,
    DEFAULT_TOLERANCE,
    STATE_VERSION,
    RateRatioEProcess,
)
from analysis.stats.evidence import EdgeEvidence, Evidence, EvidenceDetails, sequential_outcome

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def _finite_bounds(bucket_bounds: Sequence[float]) -> FloatArray:
    """Validate ``le`` bounds (increasing, ending in +Inf as Prometheus exposes them)."""
    b = np.asarray(bucket_bounds, dtype=np.float64)
    if b.ndim != 1 or b.size < 2 or not math.isinf(b[-1]) or b[-1] < 0:
        raise ValueError("bucket_bounds must list the le bounds, ending with +Inf")
    if not (np.all(np.isfinite(b[:-1])) and np.all(np.diff(b) > 0)):
        raise ValueError("bucket_bounds must be finite and strictly increasing before +Inf")
    return b


def split_by_weights(
    alpha: float, n: int, weights: Sequence[float] | None = None
) -> tuple[float, ...]:
    """Alpha for each of ``n`` edges, proportional to fixed ``weights`` (equal when None).

    Any fixed allocation that sums to ``alpha`` keeps the union bound: ``P(any edge falsely rejects)
    <= Σ alpha_j = alpha``. The weights must be fixed before the data (with the edges), never
    chosen after looking at the canary.
    """
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"edge weights must be {n} positive numbers, got {weights}")
    return tuple(float(alpha * x / w.sum()) for x in w)


def slo_edge_weights(
    edges: Sequence[float], slo_edge: float | None, quantile_weight: float = 3.0
) -> tuple[float, ...]:
    """Weights for :func:`split_by_weights`: ``quantile_weight`` for the edges near baseline
    quantiles, 1 for the SLO edge.

    Why not equal: an edge's time to reject is about ``log(1/alpha_j)`` over the evidence it
    gathers per second, and the SLO edge usually lies far in the tail (about 0.1% of baseline
    requests in the benchmark's lognormal latency against about 3% at the p90 edge), so it seldom
    decides first; alpha is worth more at the edges that see many events. The SLO edge stays, with
    less alpha, as the guard for regressions that only show at the SLO. Measured in
    ``benchmarks/sluice_tuning.py`` (latency +10%, 20 req/s: detected in 79% instead of 72% of runs,
    a little sooner; tail-only and A/A unchanged). A fixed rule of the edges, so the union bound
    holds.
    """
    if quantile_weight <= 0 or not math.isfinite(quantile_weight):
        raise ValueError(f"quantile_weight must be positive, got {quantile_weight}")
    return tuple(1.0 if e == slo_edge else float(quantile_weight) for e in edges)


TAIL_TOP = 0.999
"""The rarest baseline quantile an edge is chosen near: at 20 req/s a tenth of a percent of the
baseline is still a few slow requests a minute, and tail-only regressions show there first."""
TAIL_FACTORS = (1.0, 5.0, 10.0, 100.0)
"""Edges sit where the baseline's share of slower requests is ``1 - q`` divided by these."""


def tail_quantiles(quantile: float, top: float = TAIL_TOP) -> tuple[float, ...]:
    """``quantile`` and rarer ones up to ``top``: 0.9 gives (0.9, 0.98, 0.99, 0.999).

    Why a ladder: a shift of the whole distribution shows at every edge, a regression of a few
    percent of requests only further out, and where "further out" is depends on the service's
    own latency (2% of requests +300 ms shows best near p98 at a 100 ms median, near p99.9 at
    50 ms: benchmarks/latency_tail.py); edges over the tail's decades cover both without knowing
    the shape. Coarse buckets often map several to one bound (they are deduplicated)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    out = [round(1.0 - (1.0 - quantile) / f, 12) for f in TAIL_FACTORS]
    return tuple(q for q in out if q == out[0] or q <= top + 1e-12)


def stretched_point(
    finite_bounds: Sequence[float] | FloatArray, edge: float, increase: float
) -> tuple[int, int, float]:
    """Where the baseline is read for ``edge`` under a latency tolerance ``increase``:
    ``(lo, hi, w)`` with ``C(edge/(1+increase)) ≈ C[lo] + w·(C[hi] - C[lo])`` in cumulative counts
    (``lo == -1`` stands for the bound 0, where the count is 0)."""
    t = edge / (1.0 + increase)
    b = [float(x) for x in finite_bounds]
    hi = next(i for i, x in enumerate(b) if x >= t)
    lo_b = b[hi - 1] if hi > 0 else 0.0
    w = (t - lo_b) / (b[hi] - lo_b)
    return hi - 1, hi, float(min(max(w, 0.0), 1.0))


STRETCH_MIN_SLOW = 20.0
"""Baseline requests slower than an edge, before the rollout, below which that edge's tolerance is
not frozen from the tail's slope (the baseline is interpolated in each interval instead): with
fewer, the slope's confidence bound is so wide it buys nothing over the interpolation."""
STRETCH_CONFIDENCE = 0.025
"""One-sided level of the Poisson bounds on the pre-rollout counts the slope is read from."""


def _poisson_lower(count: float) -> float:
    """Lower ``1 - STRETCH_CONFIDENCE`` bound on a Poisson mean from one count (0 for 0)."""
    return float(gammaincinv(count, STRETCH_CONFIDENCE)) if count > 0 else 0.0


def stretch_tolerances(
    bucket_bounds: Sequence[float],
    baseline_cumulative_counts: ArrayLike,
    edges: Sequence[float],
    latency_increase: float,
) -> tuple[float | None, ...]:
    """Per edge, the ratio of slow-request rates that "latency grows by at most
    ``latency_increase``" allows there, frozen from the baseline before the rollout; None where
    the baseline had too few slow requests (that edge interpolates the baseline live).

    Why: the null at edge ``e`` is ``S_c(e) <= S_b(e/(1+x))``. Interpolating the baseline linearly
    inside Prometheus' default buckets (2-2.5x apart) is valid above the mode but so conservative
    that a 25% slowdown stays inside it (``S_lin`` can be twice ``S_b``). The tail's own slope is
    much tighter: with the elasticity ``ε(t) = -d log S_b / d log t`` monotone across the two
    buckets around ``e`` (true of the lognormal, gamma and Weibull everywhere; a Pareto tail has it
    constant), ``S_b(e/(1+x)) <= S_b(e)·(1+x)^ε`` with ``ε`` the larger of the two buckets' mean
    elasticities. The tolerance is that factor, read with Poisson bounds that make it larger,
    never smaller; where it is no tighter than the linear interpolation read the same way (the
    bucket above is nearly empty), the edge keeps the live interpolation (None).
    An identical canary has ratio 1 at every edge, so its false-abort rate does not depend on this
    at all; only how a canary slower by less than ``x`` is treated does.
    """
    bounds = _finite_bounds(bucket_bounds)
    finite = bounds[:-1]
    if not (math.isfinite(latency_increase) and latency_increase > 0):
        raise ValueError(f"latency_increase must be a positive fraction, got {latency_increase}")
    counts = np.asarray(baseline_cumulative_counts, dtype=np.float64)
    if counts.shape[-1:] != bounds.shape:
        raise ValueError(f"expected {bounds.size} cumulative counts, got shape {counts.shape}")
    counts = counts.reshape(-1, bounds.size)
    counts = counts[np.all(np.isfinite(counts), axis=1)].sum(axis=0)
    total = float(counts[-1]) if counts.size else 0.0
    slow = np.maximum(total - counts[:-1], 0.0)
    grow = math.log1p(latency_increase)
    out: list[float | None] = []
    for e in edges:
        hit = np.flatnonzero(finite == float(e))
        if hit.size != 1:
            raise ValueError(f"edge {e} is not one of the finite bucket bounds")
        j = int(hit[0])
        if slow[j] < STRETCH_MIN_SLOW:
            out.append(None)
            continue
        at_edge = _poisson_lower(float(slow[j]))
        lo, hi, w = stretched_point(finite, float(e), latency_increase)
        c_lo = float(counts[lo]) if lo >= 0 else 0.0
        linear = (total - (c_lo + w * (float(counts[hi]) - c_lo))) / at_edge
        # the mean elasticity of the bucket below and of the bucket above; a missing one is
        # unbounded (the slope alone cannot be trusted without both sides)
        below = above = math.inf
        if j > 0:
            below = math.log(slow[j - 1] / at_edge) / math.log(e / finite[j - 1])
        if j + 1 < finite.size and (beyond := _poisson_lower(float(slow[j + 1]))) > 0:
            above = math.log(slow[j] / beyond) / math.log(finite[j + 1] / e)
        elasticity = max(below, above)
        slope = math.exp(grow * elasticity) if math.isfinite(elasticity) else math.inf
        # the slope only where it beats the interpolation (read with the same bounds); else the
        # live interpolation, which pays no Poisson bound
        out.append(float(max(1.0, slope)) if slope < linear else None)
    return tuple(out)


def _modal_bound(finite: FloatArray, counts: FloatArray) -> float:
    """Upper bound of the baseline bucket with the highest density (requests per second of
    width): above it a unimodal latency density does not increase."""
    cum = counts[:-1]
    per_bucket = np.diff(np.concatenate([[0.0], cum]))
    widths = np.diff(np.concatenate([[0.0], finite]))
    return float(finite[int(np.argmax(per_bucket / widths))])


def _nearest(finite: FloatArray, counts: FloatArray, q: float, admissible: BoolArray) -> float:
    """The admissible bound whose share of slower baseline requests is nearest ``1 - q`` (as a
    ratio). Why nearest rather than the next bound up: Prometheus' default bounds are 2-2.5x
    apart, and the bound above p90 can sit so far in the tail that the interpolated baseline
    there hides a 50% slowdown (benchmarks/latency_tail.py); the nearest bound is still the
    baseline's own quantile, to the resolution the buckets allow."""
    tail = 1.0 - counts[:-1] / counts[-1]
    ok = np.flatnonzero(admissible & (tail > 0))
    if ok.size == 0:
        return float(finite[-1])
    distance = np.abs(np.log(tail[ok] / (1.0 - q)))
    return float(finite[ok[int(np.argmin(distance))]])


def choose_edges(
    bucket_bounds: Sequence[float],
    baseline_cumulative_counts: ArrayLike,
    quantiles: Sequence[float] = (0.9, 0.99),
    slo: float | None = None,
    latency_increase: float | None = None,
) -> list[float]:
    """Bucket bounds nearest above the baseline's quantiles, plus the SLO edge; sorted, unique.

    ``baseline_cumulative_counts`` are the baseline's cumulative ``le`` counts over a window before
    the rollout (2-D input is pooled over its leading axes). A quantile beyond the last finite
    bound takes the last finite bound; the SLO takes the smallest bound at or above it.
    With ``latency_increase``, a quantile's edge is the bound nearest it (see :func:`_nearest`)
    among those whose stretched point ``edge/(1+increase)`` lies in a bucket above the baseline's
    bucket of highest density (where interpolating the baseline is conservative, see the module
    docstring).
    Raises ``ValueError`` when there is nothing to choose from (no baseline requests and no SLO):
    that is a configuration problem to surface before the rollout, not evidence.
    """
    bounds = _finite_bounds(bucket_bounds)
    finite = bounds[:-1]
    counts = np.asarray(baseline_cumulative_counts, dtype=np.float64)
    if counts.shape[-1:] != bounds.shape:
        raise ValueError(f"expected {bounds.size} cumulative counts, got shape {counts.shape}")
    counts = counts.reshape(-1, bounds.size)
    counts = counts[np.all(np.isfinite(counts), axis=1)].sum(axis=0)
    edges: set[float] = set()
    total = float(counts[-1]) if counts.size else 0.0
    if total > 0:
        admissible = np.ones(finite.size, dtype=bool)
        if latency_increase is not None:
            mode = _modal_bound(finite, counts)
            for i, e in enumerate(finite):
                lo, _, _ = stretched_point(finite, float(e), latency_increase)
                admissible[i] = lo >= 0 and finite[lo] >= mode
        for q in quantiles:
            if not 0.0 < q < 1.0:
                raise ValueError(f"quantiles must be in (0, 1), got {q}")
            if latency_increase is not None:
                edges.add(_nearest(finite, counts, q, admissible))
                continue
            at_or_above = np.flatnonzero((counts[:-1] >= q * total) & admissible)
            edges.add(float(finite[at_or_above[0]] if at_or_above.size else finite[-1]))
        if latency_increase is not None and edges:
            # one bound beyond the rarest edge: a regression of a few percent of requests shows
            # first where the baseline has (almost) no slow requests at all
            beyond = np.flatnonzero((finite > max(edges)) & admissible)
            if beyond.size:
                edges.add(float(finite[beyond[0]]))
    if slo is not None:
        above = np.flatnonzero(finite >= slo)
        edges.add(float(finite[above[0]] if above.size else finite[-1]))
    if not edges:
        raise ValueError("cannot choose edges: the baseline histogram is empty and no SLO is given")
    return sorted(edges)


class HistogramEProcess:
    """One exceedance :class:`RateRatioEProcess` per edge; rejects when any edge rejects.

    ``update`` takes one interval's increments of the cumulative ``le`` bucket counts, shape
    ``(batch, n_buckets)`` (``(n_buckets,)`` when batch == 1); the last bucket is ``+Inf`` = total.
    ``events`` counts requests (both arms): for latency the request is the unit of evidence.
    """

    method = "sequential-histogram-exceedance"

    def __init__(
        self,
        bucket_bounds: Sequence[float],
        edges: Sequence[float],
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        alpha: float = 0.05,
        batch: int = 1,
        edge_weights: Sequence[float] | None = None,
        prior_scales: Sequence[float] = DEFAULT_PRIOR_SCALES,
        accept_prior_scales: Sequence[float] = DEFAULT_ACCEPT_SCALES,
        promote_tolerance: float | None = None,
        latency_increase: float | None = None,
        edge_tolerances: Sequence[float | None] | None = None,
    ) -> None:
        self.bucket_bounds = _finite_bounds(bucket_bounds)
        if len(edges) == 0:
            raise ValueError("a histogram e-process needs at least one edge")
        self.edges = tuple(float(e) for e in edges)
        idx = []
        for e in self.edges:
            hit = np.flatnonzero(self.bucket_bounds[:-1] == e)
            if hit.size != 1:
                raise ValueError(f"edge {e} is not one of the finite bucket bounds")
            idx.append(int(hit[0]))
        self._edge_index = np.asarray(idx)
        if latency_increase is not None and not (
            math.isfinite(latency_increase) and latency_increase > 0
        ):
            raise ValueError(
                f"latency_increase must be a positive fraction, got {latency_increase}"
            )
        self.latency_increase = latency_increase
        if edge_tolerances is None:
            edge_tolerances = (None,) * len(self.edges)
        if len(edge_tolerances) != len(self.edges) or (
            latency_increase is None and any(k is not None for k in edge_tolerances)
        ):
            raise ValueError("edge_tolerances needs latency_increase and one entry per edge")
        if any(k is not None and not (math.isfinite(k) and k >= 1) for k in edge_tolerances):
            raise ValueError(f"edge tolerances must be ratios >= 1, got {edge_tolerances}")
        #: per edge, the slow-rate ratio frozen from the baseline's tail (stretch_tolerances); None:
        #: the baseline is interpolated at edge/(1+x) in each interval, with ratio ``tolerance``
        self.edge_tolerances = tuple(None if k is None else float(k) for k in edge_tolerances)
        # where the baseline is read at each edge: the edge itself, or edge/(1+x) interpolated
        self._baseline_points = tuple(
            (j, j, 0.0)
            if latency_increase is None or k is not None
            else stretched_point(self.bucket_bounds[:-1], e, latency_increase)
            for e, j, k in zip(self.edges, idx, self.edge_tolerances, strict=True)
        )
        self.tolerance = float(tolerance)
        self.alpha = float(alpha)
        self.batch = int(batch)
        self.edge_alphas = split_by_weights(self.alpha, len(self.edges), edge_weights)
        self.prior_scales = tuple(float(x) for x in prior_scales)
        self.accept_prior_scales = tuple(float(x) for x in accept_prior_scales)
        self.promote_tolerance = self.tolerance if promote_tolerance is None else promote_tolerance
        self._procs = tuple(
            RateRatioEProcess(
                tolerance=tolerance * (1.0 if k is None else k),
                alpha=a,
                batch=batch,
                prior_scales=prior_scales,
                accept_prior_scales=accept_prior_scales,
                promote_tolerance=(
                    None if promote_tolerance is None else promote_tolerance * (k or 1.0)
                ),
            )
            for a, k in zip(self.edge_alphas, self.edge_tolerances, strict=True)
        )
        self._log_weights = np.log(np.asarray(self.edge_alphas) / self.alpha)
        self._rejected = np.zeros(self.batch, dtype=bool)

    def _as_buckets(self, value: ArrayLike, name: str) -> FloatArray:
        arr = np.asarray(value, dtype=np.float64)
        n = self.bucket_bounds.size
        if arr.shape == (n,) and self.batch == 1:
            return arr.reshape(1, n)
        if arr.shape != (self.batch, n):
            raise ValueError(f"{name} must have shape ({self.batch}, {n}), got {arr.shape}")
        return arr

    def update(self, canary_buckets: ArrayLike, baseline_buckets: ArrayLike) -> None:
        """Fold in one interval's bucket increments; a run with a NaN, a negative increment or an
        inconsistent bucket (above the total) in an arm skips the interval at that edge."""
        cb = self._as_buckets(canary_buckets, "canary_buckets")
        bb = self._as_buckets(baseline_buckets, "baseline_buckets")
        ct, bt = cb[:, -1], bb[:, -1]
        with np.errstate(invalid="ignore"):
            for proc, j, point in zip(
                self._procs, self._edge_index, self._baseline_points, strict=True
            ):
                cj = cb[:, j]
                ce = np.where((cj >= 0) & (cj <= ct), ct - cj, np.nan)
                proc.update(ce, ct, _slow(bb, point), bt)
        self._rejected |= self.log_e_value >= self.log_threshold

    @property
    def baseline_points(self) -> tuple[float, ...]:
        """Per edge, the latency (seconds) the baseline's slow requests are counted above: the
        edge itself, or ``edge/(1+latency_increase)`` under a latency tolerance."""
        if self.latency_increase is None:
            return self.edges
        return tuple(e / (1.0 + self.latency_increase) for e in self.edges)

    @property
    def processes(self) -> tuple[RateRatioEProcess, ...]:
        """The per-edge e-processes, in edge order."""
        return self._procs

    @property
    def log_e_value(self) -> FloatArray:
        """``log Σ_j (alpha_j/alpha)·E_j``: the edges' e-values averaged with their alpha shares.

        Why an average rather than "any edge past its own ``1/alpha_j``" (Bonferroni): under the
        metric's null (no edge worse than the tolerance) every ``E_j`` is a nonnegative
        supermartingale starting at 1, so their fixed-weight average is one too and Ville bounds
        it at ``1/alpha``; and it is never smaller than ``(alpha_j/alpha)·E_j``, so it rejects
        whenever Bonferroni would, and sooner when several edges see the regression (a shift or
        a tail moves more than one edge)."""
        stacked = np.asarray([p.log_e_value for p in self._procs]) + self._log_weights[:, None]
        return np.asarray(logsumexp(stacked, axis=0), dtype=np.float64)

    @property
    def log_threshold(self) -> float:
        """``log(1/alpha)``, the threshold of :attr:`log_e_value`."""
        return -math.log(self.alpha)

    @property
    def rejected(self) -> BoolArray:
        """Sticky: the averaged e-value has reached ``1/alpha`` at some update."""
        return self._rejected.copy()

    @property
    def events(self) -> FloatArray:
        """Requests seen in valid intervals, both arms."""
        return np.asarray(np.max([p.canary_exposure + p.baseline_exposure for p in self._procs], 0))

    @property
    def within_tolerance(self) -> BoolArray:
        return np.asarray(np.all([p.within_tolerance for p in self._procs], axis=0))

    def _scale(self, j: int) -> float:
        """What edge ``j``'s ratios are divided by to be read against the metric's tolerance: its
        frozen ratio (the allowance at the edge), else 1."""
        k = self.edge_tolerances[j]
        return 1.0 if k is None else k

    def _worst(self) -> tuple[NDArray[np.intp], list[tuple[FloatArray, FloatArray]]]:
        """Per run, the edge that decides: after a rejection the edge contributing most to the
        averaged e-value, else the highest upper bound (then the higher e-value). Bounds are
        relative to each edge's allowance (an edge with a frozen ratio ``k`` divides by it), so
        edges read both ways compare on one scale: canary against the stretched baseline."""
        cis = [
            (lo / self._scale(j), hi / self._scale(j))
            for j, (lo, hi) in enumerate(p.confidence_interval() for p in self._procs)
        ]
        log_e = np.asarray([p.log_e_value for p in self._procs])
        weighted = np.where(self._rejected[None, :], log_e + self._log_weights[:, None], -np.inf)
        hi = np.asarray([c[1] for c in cis])
        key_hi = np.where(np.isinf(hi), np.finfo(np.float64).max, hi)
        order = np.lexsort((log_e, key_hi, weighted), axis=0)
        return order[-1], cis

    def confidence_interval(self) -> tuple[FloatArray, FloatArray]:
        """The interval of the deciding edge (see :meth:`evidence`)."""
        worst, cis = self._worst()
        cols = np.arange(self.batch)
        lo = np.asarray([c[0] for c in cis])[worst, cols]
        hi = np.asarray([c[1] for c in cis])[worst, cols]
        return lo, hi

    def evidence(self, index: int = 0) -> Evidence:
        """Verdict of run ``index``, named after its deciding edge, with every edge in details."""
        worst, _ = self._worst()
        w = int(worst[index])
        edge_ev = [p.evidence(index) for p in self._procs]
        ev = edge_ev[w]
        requests = float(self.events[index])
        if self.latency_increase is None:
            null = (
                f"at no edge is the canary/baseline rate of requests slower than the edge above "
                f"{self.tolerance:g}"
            )
        else:
            null = (
                f"latency grows by at most {100 * self.latency_increase:g}%: at no edge e are "
                f"canary requests slower than e more frequent than baseline requests slower than "
                f"e/{1 + self.latency_increase:g}"
            )
            frozen = [
                f"{e:g}: {k:.3g}"
                for e, k in zip(self.edges, self.edge_tolerances, strict=True)
                if k is not None
            ]
            if frozen:
                null += (
                    f", read as the canary/baseline rate ratio of requests slower than e from the "
                    f"baseline's tail slope before the rollout ({', '.join(frozen)})"
                )
        return Evidence(
            method=self.method,
            outcome=sequential_outcome(
                rejected=bool(self.rejected[index]),
                has_data=requests > 0,
                within=bool(self.within_tolerance[index]),
            ),
            estimate=None if ev.estimate is None else ev.estimate / self._scale(w),
            lower=None if ev.lower is None else ev.lower / self._scale(w),
            upper=None if ev.upper is None else ev.upper / self._scale(w),
            log_e_value=self.log_e_value[index],
            log_threshold=self.log_threshold,
            events=round(requests),
            rule=(
                f"abort when the edges' e-values averaged with weights "
                f"{', '.join(f'{a / self.alpha:.3g}' for a in self.edge_alphas)} reach "
                f"1/alpha = {1 / self.alpha:g} (H0: {null}); edges "
                f"{', '.join(f'{e:g}' for e in self.edges)}; deciding edge {self.edges[w]:g}"
            ),
            details=EvidenceDetails(
                deciding_edge=self.edges[w],
                tolerance=self.tolerance,
                latency_increase=self.latency_increase,
                alpha=self.alpha,
                edges=[
                    EdgeEvidence(
                        edge=e,
                        baseline_point=None if self.latency_increase is None else p,
                        tolerance=k,
                        log_e_value=x.log_e_value,
                        upper=x.upper,
                        canary_slow=x.details.canary_events or 0.0,
                        canary_requests=x.details.canary_exposure or 0.0,
                        baseline_slow=x.details.baseline_events or 0.0,
                        baseline_requests=x.details.baseline_exposure or 0.0,
                    )
                    for e, p, k, x in zip(
                        self.edges, self.baseline_points, self.edge_tolerances, edge_ev, strict=True
                    )
                ],
            ),
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "kind": "histogram",
            "finite_bounds": [float(b) for b in self.bucket_bounds[:-1]],
            "edges": list(self.edges),
            "tolerance": self.tolerance,
            "alpha": self.alpha,
            "edge_alphas": list(self.edge_alphas),
            **(
                {} if self.latency_increase is None else {"latency_increase": self.latency_increase}
            ),
            **(
                {"edge_tolerances": list(self.edge_tolerances)}
                if any(k is not None for k in self.edge_tolerances)
                else {}
            ),
            "rejected": bool(self._rejected[0]),
            "edge_states": [p.to_state() for p in self._procs],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        if state.get("version") != STATE_VERSION or state.get("kind") != "histogram":
            raise ValueError("not a histogram e-process state of a known version")
        bounds = [*map(float, state["finite_bounds"]), math.inf]
        proc = cls(
            bounds,
            state["edges"],
            tolerance=float(state["tolerance"]),
            alpha=float(state["alpha"]),
            edge_weights=state.get("edge_alphas"),
            latency_increase=state.get("latency_increase"),
            edge_tolerances=state.get("edge_tolerances"),
        )
        subs = state["edge_states"]
        if len(subs) != len(proc.edges):
            raise ValueError("histogram state has the wrong number of edges")
        proc._procs = tuple(RateRatioEProcess.from_state(s) for s in subs)
        proc.prior_scales = proc._procs[0].prior_scales
        proc.accept_prior_scales = proc._procs[0].accept_prior_scales
        proc.promote_tolerance = proc._procs[0].promote_tolerance
        proc._rejected[0] = bool(state["rejected"])
        proc.edge_alphas = tuple(p.alpha for p in proc._procs)  # exactly as saved
        proc._log_weights = np.log(np.asarray(proc.edge_alphas) / proc.alpha)
        return proc


def _slow(buckets: FloatArray, point: tuple[int, int, float]) -> FloatArray:
    """Requests slower than a baseline point ``(lo, hi, w)`` (see :func:`stretched_point`): the
    total minus the interpolated cumulative count; NaN where a bucket is missing or inconsistent."""
    lo, hi, w = point
    total = buckets[:, -1]
    c_hi = buckets[:, hi]
    c_lo = buckets[:, lo] if lo >= 0 else np.zeros_like(total)
    ok = (c_lo >= 0) & (c_hi >= 0) & (c_lo <= total) & (c_hi <= total)
    slow = total - (c_lo + w * (c_hi - c_lo))
    return np.asarray(np.where(ok & (slow >= 0), slow, np.nan), dtype=np.float64)
