"""Time one e-process update per metric per tick, at batch 1 (the controller) and 1000 (the benchmark).

Why a script and not a test: speed depends on the machine; it is measured and printed, never
asserted. Target: <= 1 ms per metric per tick at batch 1. Run: ``python benchmarks/eprocess_update.py``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from analysis.stats.policy import CountsInterval, MetricSpec, PolicyConfig, RolloutAnalysis
from analysis.stats.sequential import (
    HistogramEProcess,
    NormalMixtureSPRT,
    RateRatioEProcess,
    SampleRatioCheck,
)

BOUNDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)
TICKS = 200


def per_tick(setup: Callable[[int], Callable[[int], None]], batch: int) -> float:
    """Mean seconds of one call of the update that ``setup(batch)`` returns."""
    step = setup(batch)
    step(0)  # warm caches
    start = time.perf_counter()
    for t in range(TICKS):
        step(t)
    return (time.perf_counter() - start) / TICKS


def counts(batch: int) -> Callable[[int], None]:
    rng = np.random.default_rng(0)
    proc = RateRatioEProcess(batch=batch)
    nc, nb = np.full(batch, 100.0), np.full(batch, 900.0)
    xs = rng.poisson([1.0, 9.0], size=(TICKS, batch, 2)).astype(float)
    return lambda t: proc.update(xs[t, :, 0], nc, xs[t, :, 1], nb)


def counts_with_interval(batch: int) -> Callable[[int], None]:
    rng = np.random.default_rng(0)
    proc = RateRatioEProcess(batch=batch)
    nc, nb = np.full(batch, 100.0), np.full(batch, 900.0)
    xs = rng.poisson([1.0, 9.0], size=(TICKS, batch, 2)).astype(float)

    def step(t: int) -> None:
        proc.update(xs[t, :, 0], nc, xs[t, :, 1], nb)
        proc.confidence_interval()

    return step


def histogram(batch: int) -> Callable[[int], None]:
    rng = np.random.default_rng(0)
    proc = HistogramEProcess(BOUNDS, [0.1, 0.25, 0.5], batch=batch)
    p = [0.2, 0.3, 0.3, 0.1, 0.05, 0.03, 0.01, 0.01]
    c = np.cumsum(rng.multinomial(100, p, size=(TICKS, batch)), axis=-1).astype(float)
    b = np.cumsum(rng.multinomial(900, p, size=(TICKS, batch)), axis=-1).astype(float)
    return lambda t: proc.update(c[t], b[t])


def gauge(batch: int) -> Callable[[int], None]:
    rng = np.random.default_rng(0)
    proc = NormalMixtureSPRT(tau=0.1, batch=batch)
    y = np.exp(rng.normal(0, 0.05, size=(TICKS, batch)))
    return lambda t: proc.update(y[t], 1.0)


def sample_ratio(batch: int) -> Callable[[int], None]:
    rng = np.random.default_rng(0)
    chk = SampleRatioCheck(batch=batch)
    c = rng.binomial(1000, 0.1, size=(TICKS, batch)).astype(float)
    return lambda t: chk.update(c[t], 1000.0 - c[t], 0.1)


def policy(batch: int) -> Callable[[int], None]:
    """A whole tick of a one-metric rollout: observe + decide."""
    rng = np.random.default_rng(0)
    a = RolloutAnalysis([MetricSpec("errors", "counts")], PolicyConfig(), batch=batch, t0=0.0)
    nc, nb = np.full(batch, 100.0), np.full(batch, 900.0)
    xs = rng.poisson([1.0, 9.0], size=(TICKS, batch, 2)).astype(float)

    def step(t: int) -> None:
        a.observe(60.0 * (t + 1), {"errors": CountsInterval(xs[t, :, 0], nc, xs[t, :, 1], nb)})
        a.decide(60.0 * (t + 1), 0.0)

    return step


CASES: dict[str, Callable[[int], Callable[[int], None]]] = {
    "counts (rate ratio) update": counts,
    "counts update + confidence interval": counts_with_interval,
    "histogram update (3 edges)": histogram,
    "gauge (mSPRT) update": gauge,
    "sample-ratio update": sample_ratio,
    "policy observe + decide (1 counts metric)": policy,
}


def main() -> None:
    print(f"{'per tick':44s} {'batch 1':>12s} {'batch 1000':>12s} {'per run @1000':>14s}")
    for name, setup in CASES.items():
        one = per_tick(setup, 1)
        many = per_tick(setup, 1000)
        print(f"{name:44s} {one * 1e3:9.3f} ms {many * 1e3:9.3f} ms {many * 1e6 / 1000:11.2f} µs")


if __name__ == "__main__":
    main()
