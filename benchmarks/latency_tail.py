"""Latency tolerance in latency units, and tail detection with edges from the baseline: measured.

Why a script of its own: the question is narrow and generated outside the simulator's traffic
model, so that the figures do not depend on how the benchmark's fixed edges sit against its own
latency shape. Data: lognormal latencies (sigma 0.6) with medians 20-500 ms, Prometheus' default
bucket bounds (or a finer geometric set with ``--fine``), the benchmark's schedule (canary weight
5%, 25%, 50%, 10 minutes each, 30 s windows), Poisson request counts. Edges are chosen from an
independent 10-minute baseline window before the rollout (frozen before any evidence), and, as
the run loop does, a latency tolerance's per-edge ratios from the tail's slope in an independent
hour of baseline before it (``--no-slope``: the baseline interpolated live at every edge, as
before the slope).

Cells, each with its rate and Clopper-Pearson 95% interval:

* ``under``: the canary's latency is the baseline's times 1.05 or 1.10 (at or under a 10%
  tolerance): aborts are false aborts and must stay <= alpha;
* ``above``: times 1.25 and 1.5: aborts are detections;
* ``tail``: 2% of canary requests +300 ms at 20 req/s: detections, for the latency tolerance and
  for a ratio tolerance of 1.1 on the same edges ("ratio"), and for the old fixed quantiles
  (p90, p99) with ratio 1.1 ("old").

Run: ``python -m benchmarks.latency_tail [--runs 400] [--fine] [--cells under,above,tail]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from analysis.run_loop import STRETCH_LOOKBACK
from analysis.stats.histogram import (
    HistogramEProcess,
    choose_edges,
    stretch_tolerances,
    tail_quantiles,
)
from simulations.latency import PROMETHEUS_BOUNDS, LogNormal, bin_probabilities, transformed_cdf
from simulations.metrics import clopper_pearson_interval

ALPHA = 0.025  # a latency metric's share when an error-rate metric shares the rollout's 0.05
WEIGHTS = (0.05, 0.25, 0.5)
STEP_S = 600.0
WINDOW_S = 30.0
LOOKBACK_S = 600.0
MEDIANS = (0.02, 0.05, 0.1, 0.2, 0.5)
FINE_BOUNDS: tuple[float, ...] = tuple(
    float(round(x, 6)) for x in 0.005 * 1.25 ** np.arange(0, 35)
)  # 5 ms to about 10 s, 25% apart


def _cumulative(rng: np.random.Generator, n: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Cumulative ``le`` counts (+Inf last) of ``n`` requests per run over bins ``probs``."""
    bins = rng.multinomial(n.astype(np.int64), probs)
    return np.cumsum(bins, axis=-1).astype(np.float64)


def run_cell(
    *,
    median: float,
    rps: float,
    scale: float = 1.0,
    tail_fraction: float = 0.0,
    increase: float | None,
    ratio: float = 1.0,
    quantiles: Sequence[float] | None = None,
    bounds: tuple[float, ...] = PROMETHEUS_BOUNDS,
    runs: int,
    seed: int,
    slope: bool = True,
) -> int:
    """How many of ``runs`` rollouts abort before the schedule ends."""
    rng = np.random.default_rng(seed)
    shape = LogNormal(median, 0.6)
    b = np.asarray(bounds)
    base_p = bin_probabilities(transformed_cdf(shape, b, np.ones(1)))[0]
    can_p = bin_probabilities(transformed_cdf(shape, b, np.array([scale]), tail_fraction))[0]
    le = (*bounds, float("inf"))
    qs = tail_quantiles(0.9) if quantiles is None else tuple(quantiles)
    # edges are frozen per run from an independent pre-rollout baseline window
    pre = _cumulative(rng, rng.poisson(rps * LOOKBACK_S, runs), base_p)
    edge_sets = [
        tuple(choose_edges(le, pre[i], qs, latency_increase=increase)) for i in range(runs)
    ]
    ratio_sets: list[tuple[float | None, ...] | None] = [None] * runs
    if increase is not None and slope:
        hour = _cumulative(rng, rng.poisson(rps * STRETCH_LOOKBACK, runs), base_p)
        ratio_sets = [stretch_tolerances(le, hour[i], edge_sets[i], increase) for i in range(runs)]
    keys = list(zip(edge_sets, ratio_sets, strict=True))
    aborted = np.zeros(runs, dtype=bool)
    for edges, ks in set(keys):
        idx = np.flatnonzero([k == (edges, ks) for k in keys])
        proc = HistogramEProcess(
            le,
            edges,
            tolerance=ratio,
            alpha=ALPHA,
            batch=idx.size,
            latency_increase=increase,
            edge_tolerances=ks,
        )
        for w in WEIGHTS:
            for _ in range(int(STEP_S / WINDOW_S)):
                nc = rng.poisson(rps * w * WINDOW_S, idx.size)
                nb = rng.poisson(rps * (1 - w) * WINDOW_S, idx.size)
                proc.update(_cumulative(rng, nc, can_p), _cumulative(rng, nb, base_p))
        aborted[idx] = proc.rejected
    return int(aborted.sum())


def _line(label: str, k: int, n: int) -> str:
    lo, hi = clopper_pearson_interval(k, n)
    return f"{label:<58} {k / n:6.1%}  [{lo:6.1%}, {hi:6.1%}]  ({k}/{n})"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--fine", action="store_true", help="bucket bounds 25%% apart")
    parser.add_argument("--cells", default="under,above,tail")
    parser.add_argument("--increase", type=float, default=0.10)
    parser.add_argument(
        "--no-slope", action="store_true", help="interpolate the baseline live at every edge"
    )
    args = parser.parse_args(argv)
    bounds = FINE_BOUNDS if args.fine else PROMETHEUS_BOUNDS
    cells = set(args.cells.split(","))
    x = args.increase
    t0 = time.process_time()
    print(
        f"alpha {ALPHA}, tolerance 'latency may grow by {100 * x:g}%', edges near the baseline's "
        f"p90/p98/p99/p99.9, {'fine' if args.fine else 'Prometheus default'} buckets, "
        f"{args.runs} runs per cell; rate [95% CI]"
    )
    seed = 0
    if "under" in cells:
        print("-- shifts at or under the tolerance (aborts are false aborts, goal <= alpha)")
        worst = (0, 1)
        for scale in (1.05, 1.0 + x):
            for rps in (20.0, 200.0, 2000.0):
                for m in MEDIANS:
                    seed += 1
                    k = run_cell(
                        median=m,
                        rps=rps,
                        scale=scale,
                        increase=x,
                        runs=args.runs,
                        seed=seed,
                        bounds=bounds,
                        slope=not args.no_slope,
                    )
                    if k / args.runs >= worst[0] / worst[1]:
                        worst = (k, args.runs)
                    print(
                        _line(
                            f"latency x{scale:g}, median {m * 1e3:g} ms, {rps:g} req/s",
                            k,
                            args.runs,
                        )
                    )
        print(_line("worst cell", *worst))
    if "above" in cells:
        print("-- shifts well above the tolerance (aborts are detections)")
        for scale in (1.25, 1.5):
            for rps in (20.0, 200.0):
                for m in MEDIANS:
                    seed += 1
                    k = run_cell(
                        median=m,
                        rps=rps,
                        scale=scale,
                        increase=x,
                        runs=args.runs,
                        seed=seed,
                        bounds=bounds,
                        slope=not args.no_slope,
                    )
                    print(
                        _line(
                            f"latency x{scale:g}, median {m * 1e3:g} ms, {rps:g} req/s",
                            k,
                            args.runs,
                        )
                    )
    if "tail" in cells:
        print("-- tail only: 2% of canary requests +300 ms, 20 req/s (aborts are detections)")
        variants: list[tuple[str, float | None, float, tuple[float, ...] | None]] = [
            (f"latency +{100 * x:g}%", x, 1.0, None),
            ("ratio 1.1, edges p90/p98/p99/p99.9", None, 1.1, None),
            ("ratio 1.1, edges p90/p99 (ratio default)", None, 1.1, (0.9, 0.99)),
        ]
        for name, inc, ratio, qs in variants:
            for m in MEDIANS:
                seed += 1
                k = run_cell(
                    median=m,
                    rps=20.0,
                    tail_fraction=0.02,
                    increase=inc,
                    ratio=ratio,
                    quantiles=qs,
                    runs=args.runs,
                    seed=seed,
                    bounds=bounds,
                    slope=not args.no_slope,
                )
                print(_line(f"{name}, median {m * 1e3:g} ms", k, args.runs))
    print(f"CPU time {time.process_time() - t0:.1f} s")


if __name__ == "__main__":
    main()
