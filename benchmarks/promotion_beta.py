"""Beta: how often a 5x error regression is promoted, at every traffic level (issue 12, part 6).

Why: "enough" to promote is evidence of no harm (every critical metric's one-sided confidence
sequence below the tolerance), so a canary worse than the tolerance is promoted with probability
at most its metric's alpha, whatever the traffic. This drives ``RolloutAnalysis`` through the
benchmark's stepped schedule (5% → 25% → 50%, 10 min each) with Sluice's default metrics (errors
and latency, alpha 0.05 split 0.025/0.025; the errors metric with the product's default pod model
over aggregate series, ``SluiceJudge().pod_model``: one canary pod, the default spread 0.1, so
"within tolerance" means below the widened 1.41), each run at its own step: a step promotes when the
policy says PROMOTE_STEP, at the step's maximum duration the inconclusive policy applies. It
prints, per traffic level and policy, the share of runs that promoted at least one step and the
share fully promoted, with the Wilson upper 95% bound. Run:
``python -m benchmarks.promotion_beta [--runs N]`` (about a minute at 400 runs on a busy core).
"""

from __future__ import annotations

import argparse
import time
from typing import Literal

import numpy as np

from analysis.stats.policy import (
    CountsInterval,
    Decision,
    HistogramInterval,
    PolicyConfig,
    RolloutAnalysis,
)
from simulations.judges.sluice import SluiceJudge
from simulations.metrics import wilson_interval
from simulations.schedule import WeightSchedule
from simulations.traffic import Effect, Simulator, TrafficModel

RATES = (0.1, 0.2, 2.0, 20.0, 200.0, 2000.0)
SCHEDULE = WeightSchedule.stepped((0.05, 0.25, 0.5), 600.0)
MIN_STEP_S = 60.0


def promoted(
    rps: float, ratio: float, policy: Literal["pause", "promote"], runs: int, seed: int
) -> tuple[int, int]:
    """(runs that promoted at least one step, runs fully promoted) of ``runs``."""
    model = TrafficModel(rps, 0.01, effect=Effect(name=f"errors x{ratio:g}", error_ratio=ratio))
    judge = SluiceJudge()
    config = PolicyConfig(
        alpha=judge.alpha,
        warmup_seconds=judge.warmup_s,
        min_step_seconds=MIN_STEP_S,
        on_max_duration=policy,
    )
    analysis = RolloutAnalysis(judge.specs(model), config, batch=runs, t0=0.0)
    sim = Simulator(model, runs, np.random.default_rng(seed), SCHEDULE.duration_s)
    weights = np.array([s.weight for s in SCHEDULE.steps])
    max_s = np.array([s.duration_s for s in SCHEDULE.steps])
    last = len(SCHEDULE.steps) - 1
    step = np.zeros(runs, dtype=np.int64)
    step_start = np.zeros(runs)
    done = np.zeros(runs, dtype=bool)
    paused = np.zeros(runs, dtype=bool)
    # a paused run waits for a person; give it the whole schedule again, then stop
    for _ in range(2 * SCHEDULE.n_ticks(model.tick_s)):
        w = weights[np.minimum(step, last)]
        tick = sim.tick(w)
        c, b = tick.canary, tick.baseline
        analysis.observe(
            tick.t_end,
            {
                "errors": CountsInterval(c.errors, c.requests, b.errors, b.requests),
                "latency": HistogramInterval(c.buckets, b.buckets),
            },
            expected_canary_share=w,
        )
        dec = analysis.decide(
            tick.t_end, step_start, max_step_seconds=max_s[np.minimum(step, last)]
        )
        live = ~done & ~paused
        aborted = live & (dec == Decision.ABORT.value)
        paused |= live & (dec == Decision.INCONCLUSIVE.value)
        promote = live & (dec == Decision.PROMOTE_STEP.value)
        step = np.where(promote, step + 1, step)
        step_start = np.where(promote, tick.t_end, step_start)
        done |= aborted | (promote & (step > last))
        if (done | paused).all():
            break
    fully = int((step > last).sum())
    return int((step > 0).sum()), fully


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--ratio", type=float, default=5.0)
    args = parser.parse_args()
    t0 = time.process_time()
    print(f"errors x{args.ratio:g}, {args.runs} runs per cell; promoted = at least one step")
    print("| req/s | policy | promoted | upper 95% | fully promoted | upper 95% |")
    print("|---|---|---|---|---|---|")
    for rps in RATES:
        for policy in ("pause", "promote"):
            any_step, fully = promoted(rps, args.ratio, policy, args.runs, seed=12)
            hi_any = wilson_interval(any_step, args.runs)[1]
            hi_full = wilson_interval(fully, args.runs)[1]
            print(
                f"| {rps:g} | {policy} | {any_step / args.runs:.1%} | {hi_any:.1%} | "
                f"{fully / args.runs:.1%} | {hi_full:.1%} |"
            )
    print(f"CPU {time.process_time() - t0:.0f} s")


if __name__ == "__main__":
    main()
