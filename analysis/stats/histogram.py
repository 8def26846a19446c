"""Latency regressions from Prometheus histogram buckets, as exceedance rate ratios.

Why exceedances: a request slower than an edge is an event, and "canary requests exceed the edge
``r`` times as often as baseline requests" is a count question the conditional e-process answers
exactly, with all the shared nuisances cancelling. A few edges (near the baseline's p90 and p99 and
the SLO) catch both shifts and tail-only regressions. The edges' e-values are averaged with fixed
weights (each edge's share of alpha, equal by default): a valid e-process for "no edge worse than
the tolerance" that rejects whenever the per-edge Bonferroni rule would, and sooner when a
regression moves several edges at once.
Edges are frozen from the baseline *before* the rollout, so choosing them cannot peek at the canary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import logsumexp

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


def choose_edges(
    bucket_bounds: Sequence[float],
    baseline_cumulative_counts: ArrayLike,
    quantiles: Sequence[float] = (0.9, 0.99),
    slo: float | None = None,
) -> list[float]:
    """Bucket bounds nearest above the baseline's quantiles, plus the SLO edge; sorted, unique.

    ``baseline_cumulative_counts`` are the baseline's cumulative ``le`` counts over a window before
    the rollout (2-D input is pooled over its leading axes). A quantile beyond the last finite
    bound takes the last finite bound; the SLO takes the smallest bound at or above it.
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
        for q in quantiles:
            if not 0.0 < q < 1.0:
                raise ValueError(f"quantiles must be in (0, 1), got {q}")
            at_or_above = np.flatnonzero(counts[:-1] >= q * total)
            edges.add(float(finite[at_or_above[0]] if at_or_above.size else finite[-1]))
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
        self.tolerance = float(tolerance)
        self.alpha = float(alpha)
        self.batch = int(batch)
        self.edge_alphas = split_by_weights(self.alpha, len(self.edges), edge_weights)
        self.prior_scales = tuple(float(x) for x in prior_scales)
        self.accept_prior_scales = tuple(float(x) for x in accept_prior_scales)
        self.promote_tolerance = self.tolerance if promote_tolerance is None else promote_tolerance
        self._procs = tuple(
            RateRatioEProcess(
                tolerance=tolerance,
                alpha=a,
                batch=batch,
                prior_scales=prior_scales,
                accept_prior_scales=accept_prior_scales,
                promote_tolerance=promote_tolerance,
            )
            for a in self.edge_alphas
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
            for proc, j in zip(self._procs, self._edge_index, strict=True):
                cj, bj = cb[:, j], bb[:, j]
                ce = np.where((cj >= 0) & (cj <= ct), ct - cj, np.nan)
                be = np.where((bj >= 0) & (bj <= bt), bt - bj, np.nan)
                proc.update(ce, ct, be, bt)
        self._rejected |= self.log_e_value >= self.log_threshold

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

    def _worst(self) -> tuple[NDArray[np.intp], list[tuple[FloatArray, FloatArray]]]:
        """Per run, the edge that decides: after a rejection the edge contributing most to the
        averaged e-value, else the highest upper bound (then the higher e-value)."""
        cis = [p.confidence_interval() for p in self._procs]
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
        return Evidence(
            method=self.method,
            outcome=sequential_outcome(
                rejected=bool(self.rejected[index]),
                has_data=requests > 0,
                within=bool(self.within_tolerance[index]),
            ),
            estimate=ev.estimate,
            lower=ev.lower,
            upper=ev.upper,
            log_e_value=self.log_e_value[index],
            log_threshold=self.log_threshold,
            events=round(requests),
            rule=(
                f"abort when the edges' e-values averaged with weights "
                f"{', '.join(f'{a / self.alpha:.3g}' for a in self.edge_alphas)} reach "
                f"1/alpha = {1 / self.alpha:g} (H0: at no edge is the canary/baseline rate of "
                f"requests slower than the edge above {self.tolerance:g}); edges "
                f"{', '.join(f'{e:g}' for e in self.edges)}; deciding edge {self.edges[w]:g}"
            ),
            details=EvidenceDetails(
                deciding_edge=self.edges[w],
                tolerance=self.tolerance,
                alpha=self.alpha,
                edges=[
                    EdgeEvidence(
                        edge=e,
                        log_e_value=x.log_e_value,
                        upper=x.upper,
                        canary_slow=x.details.canary_events or 0.0,
                        canary_requests=x.details.canary_exposure or 0.0,
                        baseline_slow=x.details.baseline_events or 0.0,
                        baseline_requests=x.details.baseline_exposure or 0.0,
                    )
                    for e, x in zip(self.edges, edge_ev, strict=True)
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
