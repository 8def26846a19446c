"""Time how long ``sluice`` takes to answer before doing any work: ``--help``, ``--version`` and a
subcommand's ``--help``, each in a fresh interpreter, as a person typing them would wait.

Why a script and not a test: start-up time depends on the machine and its load; it is measured
and printed, never asserted. What keeps ``sluice --help`` fast is asserted instead, by
tests/unit/rollouts/cli/test_main.py: it imports neither numpy, scipy nor the Kubernetes client.
Run: ``python benchmarks/cli_startup.py [--runs N]`` (the target for ``--help`` is 0.25 s).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS: list[list[str]] = [
    ["--help"],
    ["--version"],
    ["lint", "--help"],
    ["simulate", "--help"],
    ["get", "--help"],
]
PROGRAM = [sys.executable, "-m", "rollouts.cli.main"]


def time_once(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([*PROGRAM, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (default 7)")
    runs = parser.parse_args().runs
    time_once(["--version"])  # warm the file cache: the first run measures the disk
    print(f"{'command':<24} {'median':>8} {'min':>8} {'max':>8}   ({runs} runs each)")
    for args in COMMANDS:
        times = [time_once(args) for _ in range(runs)]
        print(
            f"sluice {' '.join(args):<17} {statistics.median(times):7.3f}s "
            f"{min(times):7.3f}s {max(times):7.3f}s"
        )


if __name__ == "__main__":
    main()
