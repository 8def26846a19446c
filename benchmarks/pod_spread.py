"""Pods as the sampling unit: false aborts of identical canaries whose pods differ, and power.

Data generated here, outside the simulator: a fleet of ``N`` baseline pods and ``k`` canary pods of
the *same* version, each pod with its own error rate ``p·exp(u)``, ``u ~ N(0, spread²)`` drawn once
per run (node, cache, neighbours). The canary gets ``weight`` of the requests, split evenly over
its pods; the baseline the rest. Each 60 s interval the policy sees the aggregate counts and the
per-pod counts (``sum by (pod)``); a run is a false abort if the canary is ever aborted within the
horizon. Power: the same with the canary's pods at ``effect`` times their rates.

    .venv/bin/python benchmarks/pod_spread.py            # the figures in docs/analysis.md
    .venv/bin/python benchmarks/pod_spread.py --runs 100 # a quick look

Prints false-abort rates with Wilson upper 95% bounds per cell, with the pod model (estimated
spread) and without it (the unwidened tolerance, for comparison), then power against 2x errors.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from analysis.stats.policy import (
    CountsInterval,
    Decision,
    MetricSpec,
    PolicyConfig,
    RolloutAnalysis,
)

INTERVAL = 60.0


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    """Upper end of the Wilson 95% interval of a binomial rate (two-sided)."""
    if n == 0:
        return 1.0
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + half) / (1 + z * z / n))


def simulate(
    *,
    runs: int,
    rate: float,
    canary_pods: int,
    spread: float,
    effect: float = 1.0,
    pod_model: bool = True,
    declared: bool = False,
    baseline_pods: int = 10,
    weight: float = 0.1,
    error_rate: float = 0.01,
    minutes: int = 30,
    history: int = 60,
    seed: int = 0,
) -> float:
    """Fraction of runs aborted within ``minutes``."""
    rng = np.random.default_rng(seed)
    k, n = canary_pods, baseline_pods
    u = rng.normal(0.0, spread, (runs, n + k))
    p = np.minimum(error_rate * np.exp(u), 1.0)
    p[:, n:] = np.minimum(p[:, n:] * effect, 1.0)
    per_pod = (
        np.concatenate([np.full(n, (1 - weight) * rate / n), np.full(k, weight * rate / k)])
        * INTERVAL
    )
    spec = MetricSpec(
        "errors",
        "counts",
        canary_pods=float(k) if pod_model else None,
        pod_spread=spread if declared and pod_model else None,
    )
    cfg = PolicyConfig(alpha=0.05, warmup_seconds=INTERVAL, min_step_seconds=INTERVAL)
    a = RolloutAnalysis([spec], cfg, batch=runs, t0=0.0)
    if pod_model and history > 0:  # the baseline's per-pod counts before the rollout
        hist = rng.poisson(per_pod[:n] * history / (1 - weight), (runs, n)).astype(float)
        a.calibrate_pods(
            "errors", rng.binomial(hist.astype(np.int64), p[:, :n]).astype(float), hist
        )
    aborted = np.zeros(runs, dtype=bool)
    for i in range(1, minutes + 1):
        req = rng.poisson(per_pod, (runs, n + k)).astype(float)
        err = rng.binomial(req.astype(np.int64), p).astype(float)
        data = CountsInterval(
            err[:, n:].sum(axis=1),
            req[:, n:].sum(axis=1),
            err[:, :n].sum(axis=1),
            req[:, :n].sum(axis=1),
            baseline_pod_events=err[:, :n] if pod_model else None,
            baseline_pod_total=req[:, :n] if pod_model else None,
            canary_pod_total=req[:, n:] if pod_model else None,
        )
        a.observe(i * INTERVAL, {"errors": data}, expected_canary_share=weight)
        aborted |= a.decide(i * INTERVAL, 0.0) == Decision.ABORT.value
    return float(aborted.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument(
        "--history", type=int, default=60, help="minutes of baseline per-pod history (0: none)"
    )
    args = ap.parse_args()
    runs = args.runs
    start = time.process_time()
    print(f"identical canaries, {runs} runs per cell, {args.minutes} min, 10 baseline pods,")
    print(f"{args.history} min of baseline per-pod history before the rollout (all traffic)")
    print("canary weight 10%, baseline error rate 1%, alpha 0.05 (one metric)")
    print("false aborts % (Wilson upper 95%): pod model | without")
    print(f"{'req/s':>6} {'k':>2} {'spread':>6}  {'pods':>16}  {'without':>16}")
    worst = 0.0
    for rate in (20.0, 200.0, 2000.0):
        for k in (1, 2, 3, 5):
            for spread in (0.0, 0.1, 0.25, 0.5):
                seed = int(rate) * 100 + k * 10 + int(spread * 10)
                cells = []
                for model in (True, False):
                    fa = simulate(
                        runs=runs,
                        rate=rate,
                        canary_pods=k,
                        spread=spread,
                        pod_model=model,
                        minutes=args.minutes,
                        history=args.history,
                        seed=seed,
                    )
                    up = wilson_upper(round(fa * runs), runs)
                    if model:
                        worst = max(worst, up)
                    cells.append(f"{100 * fa:5.1f} ({100 * up:5.1f})")
                print(f"{rate:6g} {k:2d} {spread:6.2f}  {cells[0]:>16}  {cells[1]:>16}")
    print(f"worst upper 95% bound with the pod model: {100 * worst:.1f}%")
    print("\npower against 2x errors at 200 req/s, % (Wilson lower 95%):")
    print("  spread estimated from the pods | declared (podSpread = the true spread)")
    for k in (1, 2, 3, 5):
        for spread in (0.0, 0.1, 0.25):
            cells = []
            for declared in (False, True):
                pw = simulate(
                    runs=runs,
                    rate=200.0,
                    canary_pods=k,
                    spread=spread,
                    effect=2.0,
                    minutes=args.minutes,
                    history=args.history,
                    declared=declared,
                    seed=7 + k,
                )
                low = 1 - wilson_upper(round((1 - pw) * runs), runs)
                cells.append(f"{100 * pw:5.1f} ({100 * low:5.1f})")
            print(f"  k={k} spread={spread:.2f}: {cells[0]:>14} | {cells[1]:>14}")
    print(f"CPU time {time.process_time() - start:.0f} s")


if __name__ == "__main__":
    main()
