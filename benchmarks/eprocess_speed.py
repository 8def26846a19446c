"""Time to abort against the oracle SPRT: a fixed 60 s warm-up vs a warm-up by events (issue 12, 7).

Why: the fixed warm-up alone exceeded the oracle's time at large effects. This runs the benchmark's
own judges (unchanged: ``simulations.judges``) on regression cells of the benchmark's stepped
schedule and prints median time to abort for the oracle, Sluice with its 60 s warm-up, Sluice with
the warm-up ending after ``--warmup-events`` canary requests (and no timed warm-up), and their
ratios to the oracle. Run: ``python -m benchmarks.eprocess_speed [--runs N]``.
"""

from __future__ import annotations

import argparse
import functools
import time
from unittest import mock

import numpy as np

import simulations.judges.sluice as sluice_judge
from analysis.stats.policy import PolicyConfig
from simulations.judges.oracle import OracleSPRT
from simulations.judges.sluice import SluiceJudge
from simulations.metrics import abort_times
from simulations.scenarios import STEPS
from simulations.traffic import Effect, TrafficModel, simulate

CELLS = ((20.0, 2.0), (20.0, 5.0), (200.0, 2.0), (200.0, 5.0), (2000.0, 2.0))


def median_s(t: np.ndarray) -> float:
    return float(np.median(t))  # inf when fewer than half abort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup-events", type=float, default=100.0)
    args = parser.parse_args()
    t0 = time.process_time()
    print(f"{args.runs} runs per cell, schedule {STEPS.name}, 1% baseline errors")
    print("| req/s | errors | oracle | Sluice 60 s | ratio | Sluice by events | ratio |")
    print("|---|---|---|---|---|---|---|")
    for rps, ratio in CELLS:
        model = TrafficModel(rps, 0.01, effect=Effect(name=f"x{ratio:g}", error_ratio=ratio))
        trace = simulate(model, STEPS, args.runs, seed=3)
        oracle = median_s(abort_times(OracleSPRT().abort_ticks(trace), trace.times))
        timed = median_s(SluiceJudge().run(model, STEPS, args.runs, seed=3).abort_s)
        by_events = functools.partial(PolicyConfig, warmup_events=args.warmup_events)
        with mock.patch.object(sluice_judge, "PolicyConfig", by_events):
            events = median_s(SluiceJudge(warmup_s=0.0).run(model, STEPS, args.runs, 3).abort_s)
        print(
            f"| {rps:g} | x{ratio:g} | {oracle:.0f} s | {timed:.0f} s | {timed / oracle:.2f} | "
            f"{events:.0f} s | {events / oracle:.2f} |"
        )
    print(f"CPU {time.process_time() - t0:.0f} s")


if __name__ == "__main__":
    main()
