"""Events needed to show an equal canary within tolerance: one-sided test vs two-sided sequence.

Why: promotion needs "ratio below r0" shown at level alpha. This prints, for equal canaries on
steady traffic (50/50 split, 1.5 events per interval per arm on average), the median number of
events (both arms) before the one-sided acceptance test (``within_tolerance``) and before the
two-sided confidence sequence's upper bound first fall below r0. Run:
``python -m benchmarks.acceptance_events``.
"""

from __future__ import annotations

import numpy as np

from analysis.stats.count_eprocess import RateRatioEProcess

RUNS = 200
INTERVALS = 2000


def main() -> None:
    print("| r0 | acceptance scales | one-sided median events | two-sided CS median events |")
    print("|---|---|---|---|")
    for r0 in (1.1, 1.2):
        for scales in ((0.1, 0.3), (0.5,)):
            rng = np.random.default_rng(1)
            proc = RateRatioEProcess(
                tolerance=r0, alpha=0.025, batch=RUNS, accept_prior_scales=scales
            )
            one = np.full(RUNS, np.inf)
            two = np.full(RUNS, np.inf)
            n = np.full(RUNS, 50.0)
            for _ in range(INTERVALS):
                proc.update(rng.poisson(1.5, RUNS), n, rng.poisson(1.5, RUNS), n)
                for first, shown in ((one, proc.within_tolerance), (two, proc.upper_bound <= r0)):
                    new = np.isinf(first) & shown
                    first[new] = proc.events[new]
            print(
                f"| {r0:g} | {'/'.join(map(str, scales))} | {np.median(one):.0f} | "
                f"{np.median(two):.0f} |"
            )


if __name__ == "__main__":
    main()
