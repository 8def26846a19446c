"""The conditional count e-process: canary versus baseline event rates, anytime-valid.

Why conditional: given how many events ``s_t`` happened in an interval across both arms, the
number ``x_t`` that came from the canary is ``Binomial(s_t, θ_t(r))`` with
``θ_t(r) = n_c·r / (n_c·r + n_b)``; every nuisance shared by both arms (traffic level, diurnal
drift, an incident hitting both) cancels, and a changing canary weight only changes ``θ_t``.

One grid carries everything. The cumulative log-likelihood ``ℓ(r)`` is kept on a fixed grid of
``log r`` values that contains ``log r0`` exactly and is fine near it and coarse far away. From it:

* the test of ``H0: r <= r0`` is the mixture likelihood ratio over the grid points above ``r0``
  weighted by a (discretised) prior on ``log r - log r0``: an equal-weight mixture of half-normals
  with the scales ``prior_scales``. A discrete prior is still a prior, so Ville's inequality
  applies exactly; monotone likelihood ratio makes it a supermartingale under every ``r <= r0``.
  Why a mixture of scales: a single scale puts little mass either on large effects (r = 5 is
  ``log 5 - log 1.2 = 1.4`` from r0) or close to r0 (r = 1.5 is 0.22 away); the mixture's e-value
  is at least ``1/len(prior_scales)`` of the best single component's, so it costs at most
  ``log(len(prior_scales))`` nats against the scale that would have fitted the effect, and adapts
  to whichever it is;
* "shown within tolerance" (what lets a step promote) is the mirror-image one-sided test of
  ``H0': r >= r0``: the mixture over the grid points *below* ``r0`` (half-normals on
  ``log r0 - log r`` with the scales ``accept_prior_scales``) against ``ℓ(r0)``. By the same
  monotone likelihood ratio it is a supermartingale under every ``r >= r0``, so the chance that a
  canary worse than the tolerance is ever shown within it is at most ``alpha``. Why not the
  two-sided confidence sequence's upper bound (as before): that spends its prior on both sides and
  on every r; for an equal canary at alpha 0.025 it needed a median of 4290 events to fall below
  r0 = 1.1 where this test needs 3074 (``benchmarks/acceptance_events.py``): a one-sided test
  that only asks "below r0?" concentrates its prior where the answer is decided. The
  event "the test's e-value reaches ``1/alpha``" is exactly "the one-sided confidence sequence's
  upper bound is below r0", so coverage of that bound at the true ratio is the same guarantee.
  ``promote_tolerance`` (default: ``r0``) may set a different bar for "shown within": then the
  test is anchored at the grid point at or just below it, and the guarantee reads "a canary worse
  than ``promote_tolerance`` is shown within it with probability at most ``alpha``". A bar above
  r0 is an indifference zone: between the two, the canary may be aborted (shown worse than r0)
  or promoted early (shown better than the bar), and both statements are true at level alpha;
* the confidence sequence is ``{r : log M(r) < log(1/alpha)}`` with
  ``M(r) = Σ_k w_k exp(ℓ_k - ℓ(r))`` and ``w`` a prior on ``log r`` centred on 0 (r = 1;
  the same equal mixture of normals with sds ``prior_scales``). ``M(r*)`` is a martingale under
  the true ``r*`` whatever ``r*`` is, so the set covers ``r*`` at all times with probability
  ``>= 1 - alpha``. ``ℓ`` is concave in ``log r`` (the binomial is logistic in ``log r``), so the
  set is an interval; it is known on the grid only, so the reported ends are the grid neighbours just outside it (0 and inf past the grid's
  ends), which keeps the coverage guarantee.

Events may be fractional (PromQL ``increase()`` extrapolates); they are used as they come.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import logsumexp

from analysis.stats.evidence import Evidence, EvidenceDetails, sequential_outcome

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

STATE_VERSION = 1
# More than this many events or requests in one interval is a broken scrape, not traffic; the cap
# keeps every log-likelihood finite whatever arrives.
MAX_COUNT = 1e15
# The grid reaches exp(±GRID_HALF_WIDTH) around its centre (a factor of ~3000 either way), with
# spacing ≈ 0.02·(100/grid_size) in log r near the centre, widening sinh-like towards the ends.
GRID_HALF_WIDTH = 8.0
GRID_STRETCH = 3.2
# Default tolerance r0: the worst canary/baseline ratio of event rates that is still fine. 1.1 is the
# low end of the 1.1-1.25 range an SRE would accept: pods that differ by up to 10% stay within it
# (the benchmark's "pod spread" A/A), and it buys much faster aborts of small regressions than 1.2
# (docs/analysis.md has the measured trade-off).
DEFAULT_TOLERANCE = 1.1
# Mixing scales (in log r) of the test and confidence-sequence priors: "a third past the tolerance"
# and "several times worse"; see the module docstring for why a mixture. Measured against a single
# scale 0.5 and wider mixtures (benchmarks/sluice_tuning.py): all within noise of each other except
# that the larger scale aborts large regressions (x5) sooner; (0.05, 0.15, 0.5, 1.5) was worse on
# small ones (x1.5), paying log 4 nats for mass the data rarely needs.
DEFAULT_PRIOR_SCALES: tuple[float, ...] = (0.3, 1.0)
# Mixing scales of the acceptance test (log r0 - log r): an equal canary is log(r0) = 0.1-0.2 below
# the tolerance, so the mass sits there and a little further out.
DEFAULT_ACCEPT_SCALES: tuple[float, ...] = (0.1, 0.3)


def as_batch(value: ArrayLike, batch: int, name: str) -> FloatArray:
    """Broadcast a scalar or ``(batch,)`` input to a float ``(batch,)`` array.

    Why not ``np.asarray`` alone: a ``(batch,)`` contract caught here gives a clear error instead of
    a silent broadcast across runs.
    """
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape == (batch,):
        return arr
    if arr.ndim == 0 or arr.shape == (1,):
        return np.full(batch, arr.reshape(()), dtype=np.float64)
    raise ValueError(f"{name} must be a scalar or have shape ({batch},), got {arr.shape}")


def sinh_grid(grid_size: int) -> FloatArray:
    """Offsets ``δ_k`` (k = -K..K) in log r: fine near 0, where decisions are made; wide far out."""
    k = np.arange(-grid_size, grid_size + 1, dtype=np.float64) / grid_size
    return np.asarray(GRID_HALF_WIDTH * np.sinh(GRID_STRETCH * k) / math.sinh(GRID_STRETCH))


def cell_widths(x: FloatArray) -> FloatArray:
    """Trapezoid widths, so a density times them is a discretised prior."""
    w = np.empty_like(x)
    w[1:-1] = (x[2:] - x[:-2]) / 2
    w[0] = x[1] - x[0]
    w[-1] = x[-1] - x[-2]
    return w


class LogLikelihoodGrid:
    """Cumulative conditional log-likelihood ``ℓ(r)`` on a grid of ``log r``, for a batch of runs.

    Each interval adds ``x·log r - s·softplus(log ρ + log r)``: the binomial log-likelihood of
    ``x`` of ``s`` events in the first arm with ``logit θ = log ρ + log r`` (ρ the exposure ratio),
    minus terms constant in ``r``. Rows are shifted so their maximum is 0: only differences matter,
    and this keeps the numbers small for JSON and for float precision over long rollouts.
    """

    def __init__(self, log_r: FloatArray, batch: int) -> None:
        self.log_r = log_r
        self.loglik = np.zeros((batch, log_r.size))

    def add(self, x: FloatArray, s: FloatArray, log_rho: FloatArray) -> None:
        rows = np.flatnonzero(s > 0)
        if rows.size == 0:
            return
        a = log_rho[rows, None] + self.log_r[None, :]
        inc = x[rows, None] * self.log_r[None, :] - s[rows, None] * np.logaddexp(a, 0.0)
        ll = self.loglik[rows] + inc
        ll -= ll.max(axis=1, keepdims=True)
        self.loglik[rows] = ll

    def log_mixture(self, log_weights: FloatArray, columns: slice | None = None) -> FloatArray:
        """``log Σ_k w_k exp(ℓ_k)`` per run, over all or some grid points."""
        ll = self.loglik if columns is None else self.loglik[:, columns]
        return np.asarray(logsumexp(ll + log_weights[None, :], axis=1), dtype=np.float64)

    def confidence_set(
        self, log_weights: FloatArray, log_threshold: float
    ) -> tuple[FloatArray, FloatArray]:
        """``{r : log Σ w exp(ℓ - ℓ(r)) < log_threshold}``, padded to the grid points outside it.

        Padding is what keeps coverage exact off the grid: the true set is an interval (ℓ is concave
        in log r) lying strictly between the last excluded grid points on either side; when no grid
        point is inside, it lies next to the grid's maximiser of ℓ.
        """
        n = self.log_r.size
        log_m = self.log_mixture(log_weights)[:, None] - self.loglik
        inside = log_m < log_threshold
        none = ~inside.any(axis=1)
        if none.any():
            best = np.argmax(self.loglik[none], axis=1)
            inside[np.flatnonzero(none), best] = True
        first = np.argmax(inside, axis=1)
        last = n - 1 - np.argmax(inside[:, ::-1], axis=1)
        lo = np.where(first > 0, np.exp(self.log_r[np.maximum(first - 1, 0)]), 0.0)
        hi = np.where(last < n - 1, np.exp(self.log_r[np.minimum(last + 1, n - 1)]), np.inf)
        return lo, hi

    def posterior_log_mean(self, log_weights: FloatArray) -> FloatArray:
        """Posterior mean of ``log r``: shrunk and always finite (the MLE starts at 0 or inf)."""
        lp = self.loglik + log_weights[None, :]
        lp -= lp.max(axis=1, keepdims=True)
        p = np.exp(lp)
        return np.asarray((p @ self.log_r) / p.sum(axis=1), dtype=np.float64)


def scale_mixture(offsets: FloatArray, widths: FloatArray, scales: Sequence[float]) -> FloatArray:
    """Log weights of an equal mixture of (half-)normal densities, each normalised on the grid.

    Normalising each component on its own before averaging is what makes the weights "1/len(scales)
    per scale", whatever the grid: the mixture then costs at most ``log(len(scales))`` nats against
    any one of its components.
    """
    total = np.zeros_like(offsets)
    for sc in scales:
        comp = np.exp(-0.5 * (offsets / sc) ** 2) * widths
        total += comp / comp.sum() / len(scales)
    return np.asarray(np.log(np.maximum(total, np.finfo(np.float64).tiny)))


def _check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(x) for x in scales)
    if not out or not all(math.isfinite(x) and x > 0 for x in out):
        raise ValueError(f"prior_scales must be a non-empty list of positive numbers, got {scales}")
    return out


def _check_probability(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")


class RateRatioEProcess:
    """Anytime-valid test of ``H0: canary rate <= tolerance x baseline rate``, over a batch of runs.

    Inputs to :meth:`update` are one interval's increments, arrays of shape ``(batch,)`` (scalars
    when ``batch == 1``). A run whose interval has a NaN, a negative increment (a counter reset that
    slipped through) or no traffic on either arm skips that interval: missing is never zero.
    """

    method = "sequential-rate-ratio"

    def __init__(
        self,
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        alpha: float = 0.05,
        batch: int = 1,
        prior_scales: Sequence[float] = DEFAULT_PRIOR_SCALES,
        accept_prior_scales: Sequence[float] = DEFAULT_ACCEPT_SCALES,
        grid_size: int = 100,
        promote_tolerance: float | None = None,
    ) -> None:
        if not (math.isfinite(tolerance) and tolerance > 0):
            raise ValueError(f"tolerance must be a positive ratio, got {tolerance}")
        _check_probability("alpha", alpha)
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if grid_size < 2:
            raise ValueError(f"grid_size must be >= 2, got {grid_size}")
        self.tolerance = float(tolerance)
        pt = self.tolerance if promote_tolerance is None else float(promote_tolerance)
        if not (math.isfinite(pt) and pt > 0):
            raise ValueError(f"promote_tolerance must be a positive ratio, got {promote_tolerance}")
        self.promote_tolerance = pt
        self.alpha = float(alpha)
        self.batch = int(batch)
        self.prior_scales = _check_scales(prior_scales)
        self.accept_prior_scales = _check_scales(accept_prior_scales)
        self.grid_size = int(grid_size)

        delta = sinh_grid(self.grid_size)
        self._grid = LogLikelihoodGrid(math.log(self.tolerance) + delta, self.batch)
        widths = cell_widths(delta)
        # Test prior: half-normals on log r - log r0 over the grid points above r0 (index K is r0).
        self._alt = slice(self.grid_size + 1, None)
        self._log_w_alt = scale_mixture(delta[self._alt], widths[self._alt], self.prior_scales)
        # Acceptance prior: half-normals on log r0 - log r over the grid points below r0.
        # Anchored at the grid point at or just below the promote tolerance, so "shown below the
        # anchor" implies "shown below promote_tolerance" (conservative between grid points).
        self._anchor = int(np.searchsorted(delta, math.log(pt / self.tolerance) + 1e-12) - 1)
        if self._anchor < 1:
            raise ValueError(f"promote_tolerance {pt} is too far below the tolerance {tolerance}")
        self._below = slice(0, self._anchor)
        d_acc = delta[self._anchor] - delta[self._below]
        self._log_w_acc = scale_mixture(d_acc, widths[self._below], self.accept_prior_scales)
        # Confidence-sequence prior: normals on log r centred on "canary equals baseline".
        self._log_v = scale_mixture(self._grid.log_r, widths, self.prior_scales)

        # Warm-up intervals judged against a raised null (see update_warmup): their log-likelihood
        # counts for the abort test only, never for the estimate, the interval or promotion.
        self._warm_ll = np.zeros((self.batch, delta.size))
        self._log_e = np.zeros(self.batch)
        self._log_e_accept = np.zeros(self.batch)
        self._rejected = np.zeros(self.batch, dtype=bool)
        self._counts = np.zeros((4, self.batch))  # canary events/exposure, baseline events/exposure
        self._intervals = np.zeros(self.batch)

    # -- updating -------------------------------------------------------------------------------

    def update(
        self,
        canary_events: ArrayLike,
        canary_total: ArrayLike,
        baseline_events: ArrayLike,
        baseline_total: ArrayLike,
    ) -> None:
        """Fold in one interval's increments (events, and requests or other exposure)."""
        xc = as_batch(canary_events, self.batch, "canary_events")
        nc = as_batch(canary_total, self.batch, "canary_total")
        xb = as_batch(baseline_events, self.batch, "baseline_events")
        nb = as_batch(baseline_total, self.batch, "baseline_total")
        with np.errstate(invalid="ignore"):
            valid = (
                (xc >= 0)
                & (xb >= 0)
                & (nc > 0)
                & (nb > 0)
                & (xc <= MAX_COUNT)
                & (xb <= MAX_COUNT)
                & (nc <= MAX_COUNT)
                & (nb <= MAX_COUNT)
            )  # NaN fails every comparison, so it lands here as invalid too
        self._update_valid(valid, xc, nc, xb, nb)

    def _update_valid(
        self, valid: BoolArray, xc: FloatArray, nc: FloatArray, xb: FloatArray, nb: FloatArray
    ) -> None:
        xc = np.where(valid, xc, 0.0)
        xb = np.where(valid, xb, 0.0)
        nc = np.where(valid, nc, 1.0)
        nb = np.where(valid, nb, 1.0)
        s = xc + xb
        self._grid.add(xc, s, np.log(nc) - np.log(nb))
        self._counts += np.stack([xc, np.where(valid, nc, 0.0), xb, np.where(valid, nb, 0.0)])
        self._intervals += valid
        self._refresh()
        self._rejected |= self._log_e >= self.log_threshold

    def update_warmup(
        self,
        canary_events: ArrayLike,
        canary_total: ArrayLike,
        baseline_events: ArrayLike,
        baseline_total: ArrayLike,
        null_factor: ArrayLike,
    ) -> None:
        """Fold in a warm-up interval for the abort test only, against ``H0: r <= r0·null_factor``.

        Why: a cold canary (caches, JIT) has a raised rate for a while; discarding that time
        costs every regression the whole warm-up. Judged against a null raised by at least the
        cold start's factor, the interval is still a supermartingale factor (the binomial's
        monotone likelihood ratio, as for r0), so Ville's bound keeps holding while a large
        regression, well above the raised null, already counts. The grid then reads as
        ``r0·null_factor·e^δ``, so the same prior over δ mixes it: ``log ρ`` takes
        ``log null_factor``. Such intervals never enter the estimate, the confidence sequence or
        the acceptance test (promotion)."""
        xc = as_batch(canary_events, self.batch, "canary_events")
        nc = as_batch(canary_total, self.batch, "canary_total")
        xb = as_batch(baseline_events, self.batch, "baseline_events")
        nb = as_batch(baseline_total, self.batch, "baseline_total")
        factor = as_batch(null_factor, self.batch, "null_factor")
        if not np.all(np.isfinite(factor) & (factor >= 1.0)):
            raise ValueError("null_factor must be >= 1 (the null is only ever raised)")
        with np.errstate(invalid="ignore"):
            valid = (xc >= 0) & (xb >= 0) & (nc > 0) & (nb > 0)
            valid &= (np.maximum(xc, xb) <= MAX_COUNT) & (np.maximum(nc, nb) <= MAX_COUNT)
        xc = np.where(valid, xc, 0.0)
        xb = np.where(valid, xb, 0.0)
        log_rho = np.log(np.where(valid, nc, 1.0)) - np.log(np.where(valid, nb, 1.0))
        warm = LogLikelihoodGrid(self._grid.log_r, self.batch)
        warm.loglik = self._warm_ll
        warm.add(xc, xc + xb, log_rho + np.log(factor))
        self._warm_ll = warm.loglik
        self._refresh()
        self._rejected |= self._log_e >= self.log_threshold

    def _refresh(self) -> None:
        at_r0 = self._grid.loglik[:, self.grid_size]
        self._log_e = self._grid.log_mixture(self._log_w_alt, self._alt) - at_r0
        warmed = self._warm_ll.any(axis=1)
        if warmed.any():
            # half on the e-process with the warm-up, half on the one without: a regression
            # below the raised null loses evidence in the warm-up, and must not pay for it more
            # than log 2 (an average of two e-processes is one)
            ll = self._grid.loglik + self._warm_ll
            cold = (
                logsumexp(ll[:, self._alt] + self._log_w_alt[None, :], axis=1)
                - ll[:, self.grid_size]
            )
            both = np.logaddexp(self._log_e, cold) - math.log(2.0)
            self._log_e = np.where(warmed, both, self._log_e)
        at_anchor = self._grid.loglik[:, self._anchor]
        self._log_e_accept = self._grid.log_mixture(self._log_w_acc, self._below) - at_anchor

    # -- reading --------------------------------------------------------------------------------

    @property
    def log_e_value(self) -> FloatArray:
        """``log E_T`` per run; finite, 0 before any informative interval."""
        return self._log_e.copy()

    @property
    def log_threshold(self) -> float:
        """``log(1/alpha)``: the e-value bound that rejects."""
        return -math.log(self.alpha)

    @property
    def rejected(self) -> BoolArray:
        """Sticky: once ``E >= 1/alpha`` a run stays rejected (Ville bounds the first crossing)."""
        return self._rejected.copy()

    @property
    def events(self) -> FloatArray:
        """Events seen in valid intervals, both arms."""
        return np.asarray(self._counts[0] + self._counts[2])

    @property
    def canary_events(self) -> FloatArray:
        return np.array(self._counts[0])

    @property
    def baseline_events(self) -> FloatArray:
        return np.array(self._counts[2])

    @property
    def canary_exposure(self) -> FloatArray:
        return np.array(self._counts[1])

    @property
    def baseline_exposure(self) -> FloatArray:
        return np.array(self._counts[3])

    @property
    def intervals(self) -> FloatArray:
        """Number of valid intervals folded in."""
        return self._intervals.copy()

    @property
    def estimate(self) -> FloatArray:
        """Posterior geometric-mean rate ratio (shrinks towards 1 when events are few); NaN before
        any event."""
        est = np.exp(self._grid.posterior_log_mean(self._log_v))
        return np.where(self.events > 0, est, np.nan)

    def confidence_interval(self) -> tuple[FloatArray, FloatArray]:
        """Time-uniform ``(lo, hi)`` on the rate ratio at level ``1 - alpha``; (0, inf) at first."""
        return self._grid.confidence_set(self._log_v, self.log_threshold)

    @property
    def upper_bound(self) -> FloatArray:
        return self.confidence_interval()[1]

    @property
    def log_accept_e_value(self) -> FloatArray:
        """``log`` of the acceptance e-value (evidence for ``r < r0``); 0 before any event."""
        return self._log_e_accept.copy()

    @property
    def within_tolerance(self) -> BoolArray:
        """Shown within tolerance *now*: events seen, not rejected, and the acceptance e-value at or
        above ``1/alpha``. Not sticky: a canary that later looks worse stops being shown within
        tolerance (still valid: every time it is shown lies in the event Ville bounds)."""
        shown = (self._log_e_accept >= self.log_threshold) & (self.events > 0)
        return np.asarray(shown & ~self._rejected)

    def rule(self) -> str:
        return (
            f"abort when e-value >= 1/alpha = {1 / self.alpha:g} "
            f"(H0: canary/baseline rate ratio <= {self.tolerance:g}); "
            f"within tolerance when the e-value for the ratio being below "
            f"{self.promote_tolerance:g} >= {1 / self.alpha:g} "
            f"(one-sided {100 * (1 - self.alpha):g}% confidence sequence)"
        )

    def evidence(self, index: int = 0) -> Evidence:
        """Verdict of run ``index`` (method ``sequential-rate-ratio``)."""
        lo, hi = self.confidence_interval()
        ev = float(self.events[index])
        counts = self._counts[:, index]
        return Evidence(
            method=self.method,
            outcome=sequential_outcome(
                rejected=bool(self._rejected[index]),
                has_data=ev > 0,
                within=bool(self.within_tolerance[index]),
            ),
            estimate=self.estimate[index],
            lower=lo[index],
            upper=hi[index],
            log_e_value=self._log_e[index],
            log_threshold=self.log_threshold,
            events=round(ev),
            rule=self.rule(),
            details=EvidenceDetails(
                canary_events=counts[0],
                canary_exposure=counts[1],
                baseline_events=counts[2],
                baseline_exposure=counts[3],
                intervals=self._intervals[index],
                accept_log_e_value=self._log_e_accept[index],
                tolerance=self.tolerance,
                promote_tolerance=self.promote_tolerance,
                alpha=self.alpha,
            ),
        )

    # -- persistence ----------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (batch == 1) for Kubernetes status, to resume after a restart."""
        if self.batch != 1:
            raise ValueError("to_state is for a single run (batch == 1)")
        return {
            "version": STATE_VERSION,
            "kind": "rate-ratio",
            "tolerance": self.tolerance,
            "alpha": self.alpha,
            "prior_scales": list(self.prior_scales),
            "accept_prior_scales": list(self.accept_prior_scales),
            "promote_tolerance": self.promote_tolerance,
            "grid_size": self.grid_size,
            "loglik": [float(v) for v in self._grid.loglik[0]],
            "counts": [float(v) for v in self._counts[:, 0]],
            "intervals": float(self._intervals[0]),
            "rejected": bool(self._rejected[0]),
            **(
                {"warm_loglik": [float(v) for v in self._warm_ll[0]]} if self._warm_ll.any() else {}
            ),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        if state.get("version") != STATE_VERSION or state.get("kind") != "rate-ratio":
            raise ValueError("not a rate-ratio e-process state of a known version")
        proc = cls(
            tolerance=float(state["tolerance"]),
            alpha=float(state["alpha"]),
            prior_scales=[float(x) for x in state["prior_scales"]],
            accept_prior_scales=[float(x) for x in state["accept_prior_scales"]],
            promote_tolerance=float(state["promote_tolerance"]),
            grid_size=int(state["grid_size"]),
        )
        ll = np.asarray(state["loglik"], dtype=np.float64)
        if ll.shape != proc._grid.loglik[0].shape or not np.all(np.isfinite(ll)):
            raise ValueError("rate-ratio state has a log-likelihood of the wrong shape")
        proc._grid.loglik[0] = ll
        proc._counts[:, 0] = np.asarray(state["counts"], dtype=np.float64)
        proc._intervals[0] = float(state["intervals"])
        warm = state.get("warm_loglik")
        if warm is not None:
            w = np.asarray(warm, dtype=np.float64)
            if w.shape != ll.shape or not np.all(np.isfinite(w)):
                raise ValueError("rate-ratio state has a warm-up log-likelihood of the wrong shape")
            proc._warm_ll[0] = w
        proc._refresh()
        proc._rejected[0] = bool(state["rejected"])
        return proc
