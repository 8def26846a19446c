"""Per-interval canary/baseline telemetry for thousands of simulated rollouts at once.

Everything a canary judge sees in production arrives as counter increments per scrape interval:
requests, errors, ``le`` latency buckets, and a saturation gauge. The simulator produces exactly
those, for ``runs`` independent rollouts in one set of numpy arrays, one interval at a time. One
interval at a time (rather than a whole timeline at once) because a judge that promotes early
changes the canary's weight, and so the data it sees next; :func:`simulate` stacks the ticks of a
fixed schedule for judges that never promote early.

Randomness comes only from the ``numpy.random.Generator`` given at construction, drawn in a fixed
order, so a seed reproduces every count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from simulations.latency import (
    PROMETHEUS_BOUNDS,
    LatencyShape,
    LogNormal,
    bin_probabilities,
    transformed_cdf,
)
from simulations.schedule import WeightSchedule

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

MAX_ERROR_RATE = 0.5


@dataclass(frozen=True)
class Effect:
    """What the canary does differently from the baseline (``Effect()`` is an A/A canary).

    ``latency_scale`` multiplies every request's latency (1.1 = 10% slower); ``tail_fraction`` of
    requests get ``tail_add_s`` extra, which moves p99 but not the median. ``onset_s`` delays the
    effect (a leak, a cache that fills); ``intermittent_on_s``/``intermittent_off_s`` switch it on
    and off as a two-state Markov chain with those mean durations (a flaky dependency).
    """

    name: str = "A/A"
    error_ratio: float = 1.0
    latency_scale: float = 1.0
    tail_fraction: float = 0.0
    tail_add_s: float = 0.3
    saturation_ratio: float = 1.0
    onset_s: float = 0.0
    intermittent_on_s: float | None = None
    intermittent_off_s: float | None = None

    @property
    def is_null(self) -> bool:
        return (
            self.error_ratio == 1.0
            and self.latency_scale == 1.0
            and self.tail_fraction == 0.0
            and self.saturation_ratio == 1.0
        )

    @property
    def intermittent(self) -> bool:
        return self.intermittent_on_s is not None and self.intermittent_off_s is not None

    def duty_cycle(self) -> float:
        """Long-run fraction of time the effect is on (1 unless intermittent)."""
        if not self.intermittent:
            return 1.0
        assert self.intermittent_on_s is not None and self.intermittent_off_s is not None
        return self.intermittent_on_s / (self.intermittent_on_s + self.intermittent_off_s)


@dataclass(frozen=True)
class Nuisances:
    """Things that happen in production and must *not* abort a healthy canary.

    - ``diurnal_amplitude``: traffic and baseline error rate swing by this fraction over
      ``diurnal_period_s`` (compressed to hours so that a 30-minute rollout sees real drift).
    - ``incident_prob``: chance per run of one shared incident of ``incident_s`` seconds in which
      both arms' error rate is multiplied by ``incident_error_mult`` and latency by
      ``incident_latency_scale`` (a database hiccup is not the canary's fault).
    - ``pod_spread``/``pod_latency_spread``: the canary's pods differ from the baseline's by a
      per-run factor drawn log-uniformly within ``±spread`` (inside a 1.2 tolerance).
    - ``cold_start_s``: the canary starts cold; errors ×(1+``cold_error_amp``·e^(-t/τ)) and latency
      ×(1+``cold_latency_amp``·e^(-t/τ)) with τ = ``cold_start_s``/3.
    - ``scrape_gap_prob``: an interval's scrape is missing (NaN in every series of both arms).
    - ``counter_reset_prob``: per interval and arm, the arm's pod restarts and its counters start
      again from zero; the increments are then recovered with :func:`increase`, as Prometheus
      does, including its blind spot (a reset whose new value is not below the old one).

    Nuisances of the benchmark families (:mod:`simulations.families`):

    - ``pod_log_sd``: every pod of both arms has its own error rate, the arm's rate times
      ``exp(σz − σ²/2)`` with ``z`` standard normal per pod and run (mean 1 over pods), so
      "canary pods behave like baseline pods" while a canary of few pods realises a ratio far
      from 1. Requires ``TrafficModel.canary_pods``/``baseline_pods`` for the pod counts.
    - ``routing_bias``: the mesh routes ``weight × (1 + routing_bias)`` to the canary while the
      judge is told ``weight`` (``-0.2`` is "4% routed while 5% was asked").
    - ``canary_restart_prob``: per interval and canary pod, the pod restarts at a uniformly drawn
      moment of the interval; the requests it served in that interval before the restart (and
      their errors and latencies) were never scraped, so ``increase()`` drops them, as it does in
      Prometheus when the scrape before the restart came at the interval's start.
    - ``incident_start_s``: the shared incident starts then in every run (with
      ``incident_prob``), for constructed cases such as an incident that begins at a weight
      change.
    """

    diurnal_amplitude: float = 0.0
    diurnal_period_s: float = 7200.0
    incident_prob: float = 0.0
    incident_s: float = 180.0
    incident_error_mult: float = 10.0
    incident_latency_scale: float = 2.0
    pod_spread: float = 0.0
    pod_latency_spread: float = 0.0
    cold_start_s: float = 0.0
    cold_error_amp: float = 2.0
    cold_latency_amp: float = 1.0
    scrape_gap_prob: float = 0.0
    counter_reset_prob: float = 0.0
    pod_log_sd: float = 0.0
    routing_bias: float = 0.0
    canary_restart_prob: float = 0.0
    incident_start_s: float | None = None

    def __post_init__(self) -> None:
        if not self.pod_log_sd >= 0:
            raise ValueError(f"pod_log_sd must be >= 0, got {self.pod_log_sd}")
        if not self.routing_bias > -1.0:
            raise ValueError(f"routing_bias must be > -1, got {self.routing_bias}")
        if not 0.0 <= self.canary_restart_prob <= 1.0:
            raise ValueError(
                f"canary_restart_prob must be in [0, 1], got {self.canary_restart_prob}"
            )


@dataclass(frozen=True)
class TrafficModel:
    """One scenario's service: traffic, error rate, latency shape, effect and nuisances.

    ``canary_pods``/``baseline_pods`` split each arm's traffic equally over its pods (each pod's
    requests are Poisson), and every interval reports per-pod request and error counts as well as
    the arm's totals (:class:`Arm`).
    """

    total_rps: float
    base_error_rate: float = 0.01
    latency: LatencyShape = field(default_factory=LogNormal)
    effect: Effect = field(default_factory=Effect)
    nuisances: Nuisances = field(default_factory=Nuisances)
    tick_s: float = 10.0
    bounds: tuple[float, ...] = PROMETHEUS_BOUNDS
    slo_s: float = 0.5
    saturation_level: float = 0.02
    saturation_noise: float = 0.05
    canary_pods: int = 1
    baseline_pods: int = 1

    def __post_init__(self) -> None:
        if self.slo_s not in self.bounds:
            raise ValueError("the SLO edge must be one of the bucket bounds")
        if self.canary_pods < 1 or self.baseline_pods < 1:
            raise ValueError(
                f"canary_pods and baseline_pods must be >= 1, got {self.canary_pods} and "
                f"{self.baseline_pods}"
            )


@dataclass(frozen=True)
class Arm:
    """One arm's observations for one interval (or a stack of them): NaN where not scraped.

    ``buckets`` are increments of cumulative ``le`` counters, last axis ``len(bounds) + 1`` with
    ``+Inf`` last (so ``buckets[..., -1] == requests``). ``pod_requests``/``pod_errors`` are the
    same counts per pod (last axis: the arm's pods), what ``sum by (pod)`` returns; ``requests``
    and ``errors`` are their sums, except that the nuisance ``counter_reset_prob`` is applied to
    the arm's totals only.
    """

    requests: FloatArray
    errors: FloatArray
    buckets: FloatArray
    saturation: FloatArray
    pod_requests: FloatArray
    pod_errors: FloatArray


@dataclass(frozen=True)
class Truth:
    """What really happened, for scoring judges (never shown to them, except to the oracle).

    Error and slow-request probabilities are per request; ``canary_requests`` are the requests
    actually served (scraped or not), which is what harm is counted on.
    """

    canary_requests: FloatArray
    canary_error_p: FloatArray
    baseline_error_p: FloatArray
    canary_bins_p: FloatArray
    baseline_bins_p: FloatArray
    canary_slow_p: FloatArray
    baseline_slow_p: FloatArray
    effect_on: BoolArray


@dataclass(frozen=True)
class Tick:
    """One interval ``(t_end - tick_s, t_end]`` for every run."""

    t_end: float
    weight: FloatArray
    canary: Arm
    baseline: Arm
    truth: Truth


@dataclass(frozen=True)
class Trace:
    """Ticks of a fixed schedule stacked on axis 1: arrays are ``(runs, ticks[, bins])``."""

    model: TrafficModel
    schedule: WeightSchedule
    times: FloatArray
    weights: FloatArray
    canary: Arm
    baseline: Arm
    truth: Truth

    @property
    def runs(self) -> int:
        return int(self.canary.requests.shape[0])

    @property
    def ticks(self) -> int:
        return int(self.times.shape[0])


def increase(previous: FloatArray, current: FloatArray) -> FloatArray:
    """Prometheus' counter increase between two scrapes, with its reset rule.

    A counter that went down was reset, so everything it now shows is new; a reset whose new
    value is not below the old one cannot be seen and is under-counted, exactly as in Prometheus.
    """
    return np.where(current >= previous, current - previous, current)


class Simulator:
    """Generates the intervals of ``runs`` rollouts of one :class:`TrafficModel`, in order."""

    def __init__(
        self, model: TrafficModel, runs: int, rng: np.random.Generator, horizon_s: float
    ) -> None:
        self.model = model
        self.runs = runs
        self.rng = rng
        self.t_end = 0.0
        self._bounds = np.asarray(model.bounds, dtype=float)
        self._slo_k = model.bounds.index(model.slo_s)
        nz, ef = model.nuisances, model.effect
        # Per-run draws, all up front and in a fixed order, so runs are reproducible by seed.
        self._phase = rng.uniform(0.0, 2 * np.pi, runs)
        self._pod_err = np.exp(rng.uniform(-1, 1, runs) * np.log1p(nz.pod_spread))
        self._pod_lat = np.exp(rng.uniform(-1, 1, runs) * np.log1p(nz.pod_latency_spread))
        has_incident = rng.random(runs) < nz.incident_prob
        start = rng.uniform(0.0, max(horizon_s - nz.incident_s, 0.0), runs)
        self._incident_start = np.where(has_incident, start, np.inf)
        if ef.intermittent:
            self._on = rng.random(runs) < ef.duty_cycle()
        else:
            self._on = np.ones(runs, dtype=bool)
        self._sat_state = np.zeros((2, runs))
        # Drawn after everything above so that models without pod spread keep their streams.
        self._pod_mult_c = self._pod_multipliers(model.canary_pods)
        self._pod_mult_b = self._pod_multipliers(model.baseline_pods)
        if nz.incident_start_s is not None:
            self._incident_start = np.where(has_incident, nz.incident_start_s, np.inf)
        self._raw: dict[str, FloatArray] | None = None
        if nz.counter_reset_prob > 0:
            k = len(model.bounds) + 1
            self._raw = {
                "c_req": np.zeros(runs),
                "c_err": np.zeros(runs),
                "c_bkt": np.zeros((runs, k)),
                "b_req": np.zeros(runs),
                "b_err": np.zeros(runs),
                "b_bkt": np.zeros((runs, k)),
            }

    def _pod_multipliers(self, pods: int) -> FloatArray:
        """Each pod's error-rate factor, ``(runs, pods)``, mean 1 over the pod population."""
        sd = self.model.nuisances.pod_log_sd
        if sd == 0:
            return np.ones((self.runs, pods))
        return np.exp(self.rng.normal(0.0, sd, (self.runs, pods)) - sd * sd / 2)

    def baseline_history(
        self, seconds: float, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray]:
        """The baseline's per-pod ``(errors, requests)``, ``(runs, baseline_pods)``, over
        ``seconds`` before the rollout, when it served all the traffic: what the run loop reads
        for the pod model before its first window. Same pods (the per-pod error factors of this
        simulation); no drift, incident or effect. Drawn from ``rng``, not the simulation's own
        generator, so that reading history leaves every later interval as it would be."""
        m = self.model
        lam = m.total_rps * seconds / m.baseline_pods
        requests = rng.poisson(lam, (self.runs, m.baseline_pods)).astype(float)
        p = np.minimum(m.base_error_rate * self._pod_mult_b, MAX_ERROR_RATE)
        errors = rng.binomial(requests.astype(np.int64), p).astype(float)
        return errors, requests

    def _effect_on(self, t_start: float) -> BoolArray:
        ef = self.model.effect
        if ef.intermittent:
            assert ef.intermittent_on_s is not None and ef.intermittent_off_s is not None
            tick = self.model.tick_s
            flip = self.rng.random(self.runs)
            p_off = min(tick / ef.intermittent_on_s, 1.0)
            p_on = min(tick / ef.intermittent_off_s, 1.0)
            self._on = np.where(self._on, flip >= p_off, flip < p_on)
        started = t_start >= ef.onset_s
        return self._on & started & (not ef.is_null)

    def tick(self, weight: FloatArray | float) -> Tick:
        """Advance one interval with the given canary weight per run."""
        m, ef, nz, rng = self.model, self.model.effect, self.model.nuisances, self.rng
        w = np.broadcast_to(np.asarray(weight, dtype=float), (self.runs,)).copy()
        t0 = self.t_end
        t1 = t0 + m.tick_s
        mid = 0.5 * (t0 + t1)
        on = self._effect_on(t0)

        drift = 1.0 + nz.diurnal_amplitude * np.sin(
            2 * np.pi * mid / nz.diurnal_period_s + self._phase
        )
        incident = (mid >= self._incident_start) & (mid < self._incident_start + nz.incident_s)
        cold = np.exp(-mid / (nz.cold_start_s / 3.0)) if nz.cold_start_s > 0 else 0.0

        lam = m.total_rps * m.tick_s * drift
        routed = np.minimum(w * (1.0 + nz.routing_bias), 1.0)
        kc, kb = m.canary_pods, m.baseline_pods
        # Per pod (last axis); with one pod per arm these are the draws of the per-arm model.
        pn_c = rng.poisson((lam * routed / kc)[:, None] * np.ones(kc)).astype(float)
        pn_b = rng.poisson((lam * (1.0 - routed) / kb)[:, None] * np.ones(kb)).astype(float)

        p_arm_b = m.base_error_rate * drift * np.where(incident, nz.incident_error_mult, 1.0)
        p_arm_b = np.minimum(p_arm_b, MAX_ERROR_RATE)
        p_arm_c = p_arm_b * self._pod_err * (1.0 + nz.cold_error_amp * cold)
        p_arm_c = np.where(on, p_arm_c * ef.error_ratio, p_arm_c)
        pp_b = np.minimum(p_arm_b[:, None] * self._pod_mult_b, MAX_ERROR_RATE)
        pp_c = np.minimum(p_arm_c[:, None] * self._pod_mult_c, MAX_ERROR_RATE)
        if nz.canary_restart_prob > 0:
            served_pn_c = pn_c
            pn_c, pe_c = self._restarts(pn_c, pp_c)
        else:
            pe_c = rng.binomial(pn_c.astype(np.int64), pp_c).astype(float)
        pe_b = rng.binomial(pn_b.astype(np.int64), pp_b).astype(float)
        n_c, e_c = pn_c.sum(axis=1), pe_c.sum(axis=1)
        n_b, e_b = pn_b.sum(axis=1), pe_b.sum(axis=1)
        # Per-request rates of the arm as served (pods share traffic equally).
        p_c = pp_c.mean(axis=1)
        p_b = pp_b.mean(axis=1)

        lat_shared = np.where(incident, nz.incident_latency_scale, 1.0)
        scale_c = lat_shared * self._pod_lat * (1.0 + nz.cold_latency_amp * cold)
        scale_c = np.where(on, scale_c * ef.latency_scale, scale_c)
        tail = np.where(on, ef.tail_fraction, 0.0)
        bins_b = bin_probabilities(transformed_cdf(m.latency, self._bounds, lat_shared))
        bins_c = bin_probabilities(
            transformed_cdf(m.latency, self._bounds, scale_c, tail, ef.tail_add_s)
        )
        h_c = np.cumsum(rng.multinomial(n_c.astype(np.int64), bins_c), axis=-1).astype(float)
        h_b = np.cumsum(rng.multinomial(n_b.astype(np.int64), bins_b), axis=-1).astype(float)

        noise = rng.normal(0.0, m.saturation_noise, (2, self.runs))
        self._sat_state = 0.8 * self._sat_state + np.sqrt(1 - 0.8**2) * noise
        sat_common = m.saturation_level * np.where(incident, 1.5, 1.0)
        sat_c = sat_common * self._pod_err * np.where(on, ef.saturation_ratio, 1.0)
        sat_c = sat_c * np.exp(self._sat_state[0])
        sat_b = sat_common * np.exp(self._sat_state[1])

        served_c = served_pn_c.sum(axis=1) if nz.canary_restart_prob > 0 else n_c.copy()
        if self._raw is not None:
            n_c, e_c, h_c, n_b, e_b, h_b = self._through_counters(n_c, e_c, h_c, n_b, e_b, h_b)

        gap = rng.random(self.runs) < nz.scrape_gap_prob
        canary = _arm(n_c, e_c, h_c, sat_c, gap, pn_c, pe_c)
        baseline = _arm(n_b, e_b, h_b, sat_b, gap, pn_b, pe_b)
        slow_k = self._slo_k + 1  # bins above the SLO edge start after bin index slo_k
        truth = Truth(
            canary_requests=served_c,
            canary_error_p=p_c,
            baseline_error_p=p_b,
            canary_bins_p=bins_c,
            baseline_bins_p=bins_b,
            canary_slow_p=bins_c[:, slow_k:].sum(axis=-1),
            baseline_slow_p=bins_b[:, slow_k:].sum(axis=-1),
            effect_on=on,
        )
        self.t_end = t1
        return Tick(t1, w, canary, baseline, truth)

    def _restarts(self, served: FloatArray, p: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Canary pods restarting mid-interval: what was served before the restart is not seen.

        Returns the scraped requests and errors per pod. Requests before
        and after a restart at fraction ``u`` of the interval are a Poisson split, so the seen
        ones are ``Binomial(served, 1 - u)``, and each request errs independently.
        """
        rng = self.rng
        restart = rng.random(served.shape) < self.model.nuisances.canary_restart_prob
        lost_share = np.where(restart, rng.random(served.shape), 0.0)
        seen = rng.binomial(served.astype(np.int64), 1.0 - lost_share).astype(float)
        e_seen = rng.binomial(seen.astype(np.int64), p).astype(float)
        return seen, e_seen

    def _through_counters(
        self, *incs: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """Accumulate raw counters with pod restarts and read them back with :func:`increase`."""
        assert self._raw is not None
        p = self.model.nuisances.counter_reset_prob
        reset = self.rng.random((2, self.runs)) < p
        out: list[FloatArray] = []
        for key, inc in zip(
            ("c_req", "c_err", "c_bkt", "b_req", "b_err", "b_bkt"), incs, strict=True
        ):
            r = reset[0] if key.startswith("c") else reset[1]
            r = r[:, None] if inc.ndim == 2 else r
            prev = self._raw[key]
            cur = np.where(r, inc, prev + inc)
            out.append(increase(prev, cur))
            self._raw[key] = cur
        return out[0], out[1], out[2], out[3], out[4], out[5]


def _arm(
    n: FloatArray,
    e: FloatArray,
    h: FloatArray,
    s: FloatArray,
    gap: BoolArray,
    pod_n: FloatArray,
    pod_e: FloatArray,
) -> Arm:
    nan = np.nan
    return Arm(
        requests=np.where(gap, nan, n),
        errors=np.where(gap, nan, e),
        buckets=np.where(gap[:, None], nan, h),
        saturation=np.where(gap, nan, s),
        pod_requests=np.where(gap[:, None], nan, pod_n),
        pod_errors=np.where(gap[:, None], nan, pod_e),
    )


def simulate(model: TrafficModel, schedule: WeightSchedule, runs: int, seed: int) -> Trace:
    """All intervals of ``runs`` rollouts that follow ``schedule`` at every step's full duration."""
    rng = np.random.default_rng(seed)
    sim = Simulator(model, runs, rng, schedule.duration_s)
    weights = schedule.weights(model.tick_s)
    ticks = [sim.tick(w) for w in weights]
    times = np.array([t.t_end for t in ticks])

    def stack_arm(name: str) -> Arm:
        arms = [getattr(t, name) for t in ticks]
        return Arm(
            requests=np.stack([a.requests for a in arms], axis=1),
            errors=np.stack([a.errors for a in arms], axis=1),
            buckets=np.stack([a.buckets for a in arms], axis=1),
            saturation=np.stack([a.saturation for a in arms], axis=1),
            pod_requests=np.stack([a.pod_requests for a in arms], axis=1),
            pod_errors=np.stack([a.pod_errors for a in arms], axis=1),
        )

    truths = [t.truth for t in ticks]
    truth = Truth(
        **{
            f: np.stack([getattr(tr, f) for tr in truths], axis=1)
            for f in Truth.__dataclass_fields__
        }
    )
    return Trace(model, schedule, times, weights, stack_arm("canary"), stack_arm("baseline"), truth)
