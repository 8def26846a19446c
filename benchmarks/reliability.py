"""The reliability suites at full size, and docs/reliability.md regenerated from their figures.

Run ``python -m benchmarks.reliability`` (every suite, about an hour on 2 cores) or
``--suite fuzz|chaos|api|prometheus``; ``--quick`` runs the sizes the test suite runs. Each suite
starts its own kmock emulator, Prometheus and controller process (tests/reliability/); a suite's
figures go to benchmarks/results/reliability.json, and the tables in docs/reliability.md (between
the generated markers) are rewritten from that file, so a partial run keeps the other suites'
last figures. Why a command and not a test: the full sizes take too long for every commit; the
test suite runs the quick sizes of the same code (tests/integration/reliability/).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability.api_faults import FaultReport, api_faults  # noqa: E402
from tests.reliability.chaos import ChaosReport, chaos  # noqa: E402
from tests.reliability.fuzz import FuzzReport, fuzz_rollouts, fuzz_templates  # noqa: E402
from tests.reliability.prometheus_faults import PrometheusReport, prometheus_faults  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"
DOC = ROOT / "docs" / "reliability.md"
BEGIN = "<!-- BEGIN GENERATED: python -m benchmarks.reliability -->"
END = "<!-- END GENERATED -->"


SIZE_NAMES = (
    "fuzz-rollouts",
    "fuzz-templates",
    "chaos-runs",
    "chaos-rollouts",
    "chaos-kills",
    "api-runs",
    "api-rollouts",
    "prometheus-rounds",
)
SIZES: dict[str, int] = {}
"""Sizes set on the command line (``--size fuzz-rollouts=2000``), over the defaults below."""


def _size(name: str, quick: int, full: int, is_quick: bool) -> int:
    return SIZES.get(name, quick if is_quick else full)


def run_fuzz(quick: bool) -> FuzzReport:
    total = FuzzReport()
    rollouts = _size("fuzz-rollouts", 30, 7000, quick)
    templates = _size("fuzz-templates", 10, 3000, quick)
    batch_r, batch_t = (30, 10) if quick else (500, 250)
    for i, start in enumerate(range(0, rollouts, batch_r)):
        total.merge(fuzz_rollouts(min(batch_r, rollouts - start), seed=1000 + i))
        _progress("fuzz rollouts", start + batch_r, rollouts, total)
    for i, start in enumerate(range(0, templates, batch_t)):
        total.merge(fuzz_templates(min(batch_t, templates - start), seed=2000 + i))
        _progress("fuzz templates", start + batch_t, templates, total)
    return total


def run_chaos(quick: bool) -> dict[str, ChaosReport]:
    runs = _size("chaos-runs", 1, 4, quick)
    size = _size("chaos-rollouts", 9, 60, quick)
    kills = _size("chaos-kills", 3, 12, quick)
    killed, control = ChaosReport(), ChaosReport()
    for seed in range(runs):
        killed.merge(chaos(size, seed=seed, kills=kills))
        _progress("chaos", seed + 1, runs, killed)
    control.merge(chaos(size, seed=99, kills=0))
    return {"killed": killed, "uninterrupted": control}


def run_api(quick: bool) -> FaultReport:
    runs = _size("api-runs", 1, 3, quick)
    size = _size("api-rollouts", 9, 40, quick)
    total = FaultReport()
    for seed in range(runs):
        r = api_faults(size, seed=seed, brownout_seconds=5 if quick else 60)
        total.merge(r)
        _progress("api faults", seed + 1, runs, total)
    return total


def run_prometheus(quick: bool) -> PrometheusReport:
    return prometheus_faults(rounds=_size("prometheus-rounds", 1, 5, quick))


SUITES: dict[str, Callable[[bool], Any]] = {
    "fuzz": run_fuzz,
    "chaos": run_chaos,
    "api": run_api,
    "prometheus": run_prometheus,
}


def _progress(what: str, done: int, total: int, report: Any) -> None:
    failures = len(report.failures)
    print(f"  {what}: {min(done, total)}/{total} done, {failures} failures so far", flush=True)


def _plain(report: Any) -> Any:
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        out = dataclasses.asdict(report)
        out["failures"] = out["failures"][:50]
        return out
    return {k: _plain(v) for k, v in report.items()}


def machine() -> str:
    load = os.getloadavg()[0]
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load:.1f} at the end"
    )


def render(results: dict[str, Any]) -> str:
    lines = [BEGIN, ""]
    if "fuzz" in results:
        f = results["fuzz"]["report"]
        lines += [
            f"### Fuzz ({results['fuzz']['when']}, {results['fuzz']['seconds']:.0f} s)",
            "",
            "| bodies | Rollout | AnalysisTemplate | invalid | named the field | valid, with a status "
            "| refused on create | neighbours promoted | controller exits | tracebacks | failures |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {f['rollout_bodies'] + f['template_bodies']:,} | {f['rollout_bodies']:,} "
            f"| {f['template_bodies']:,} | {f['invalid']:,} | {f['stalled_naming_field']:,} "
            f"| {f['valid_with_status']:,} | {f['refused_on_create']} "
            f"| {f['neighbours_promoted']}/{f['neighbours']} | {f['controller_exits']} "
            f"| {f['tracebacks']} | {len(f['failures'])} |",
            "",
        ]
    if "chaos" in results:
        lines += [
            f"### Chaos ({results['chaos']['when']}, {results['chaos']['seconds']:.0f} s)",
            "",
            "| run | rollouts | with analysis | kills | kills mid-rollout | as expected | stuck "
            "| wrong outcome | canary weight left | runs left running | duplicate aborts "
            "| controller exits | outcomes |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, c in results["chaos"]["report"].items():
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(c["outcomes"].items()))
            lines.append(
                f"| {name} | {c['rollouts']} | {c['with_analysis']} | {c['kills']} "
                f"| {c['kills_mid_rollout']} | {c['as_expected']} | {c['stuck']} "
                f"| {c['wrong_outcome']} | {c['canary_weight_left']} | {c['runs_left_running']} "
                f"| {c['duplicate_events']} | {c['controller_exits']} | {outcomes} |"
            )
        lines.append("")
    if "api" in results:
        a = results["api"]["report"]
        faults = ", ".join(f"{k} {v}" for k, v in sorted(a["faults"].items()))
        lines += [
            f"### API faults ({results['api']['when']}, {results['api']['seconds']:.0f} s)",
            "",
            "| rollouts | with analysis | faults injected | as expected | stuck | wrong outcome "
            "| controller exits | tracebacks | log lines |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {a['rollouts']} | {a['with_analysis']} | {sum(a['faults'].values()):,} "
            f"| {a['as_expected']} | {a['stuck']} | {a['wrong_outcome']} "
            f"| {a['controller_exits']} | {a['tracebacks']} | {a['log_lines']:,} |",
            "",
            f"Faults by kind: {faults}.",
            "",
        ]
    if "prometheus" in results:
        p = results["prometheus"]["report"]
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(p["outcomes"].items()))
        lines += [
            f"### Prometheus faults ({results['prometheus']['when']}, "
            f"{results['prometheus']['seconds']:.0f} s)",
            "",
            "| faulty rollouts | promoted | left waiting | controls | controls promoted |",
            "|---|---|---|---|---|",
            f"| {p['rollouts']} | {p['promoted']} | {p['unresolved']} | {p['controls']} "
            f"| {p['controls_promoted']} |",
            "",
            f"Outcomes: {outcomes}.",
            "",
        ]
    lines.append(END)
    return "\n".join(lines)


def write_doc(results: dict[str, Any]) -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    DOC.write_text(text[:start] + render(results) + text[end:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suite", choices=[*SUITES, "all"], default="all", action="store", nargs="?"
    )
    parser.add_argument("--quick", action="store_true", help="the test suite's sizes")
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="NAME=N",
        help="override one size: fuzz-rollouts, fuzz-templates, chaos-runs, chaos-rollouts, "
        "chaos-kills, api-runs, api-rollouts, prometheus-rounds",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; keep the results file and docs"
    )
    args = parser.parse_args()
    for item in args.size:
        name, _, value = item.partition("=")
        if name not in SIZE_NAMES:
            parser.error(f"--size {item}: unknown size {name!r}")
        if not value.isdigit():
            parser.error(f"--size {item}: expected NAME=N with N a whole number")
        SIZES[name] = int(value)
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    failed = False
    ran: list[str] = []
    for name, suite in SUITES.items():
        if args.suite not in ("all", name):
            continue
        ran.append(name)
        print(f"{name}: running{' (quick)' if args.quick else ''}", flush=True)
        started = time.monotonic()
        report = suite(args.quick)
        seconds = time.monotonic() - started
        plain = _plain(report)
        reports = plain.values() if name == "chaos" else [plain]
        failures = [f for r in reports for f in r["failures"]]
        failed |= bool(failures)
        print(json.dumps(plain, indent=1)[:4000])
        print(f"{name}: {len(failures)} failures in {seconds:.0f} s")
        results[name] = {
            "report": plain,
            "seconds": seconds,
            "quick": args.quick,
            "when": f"{datetime.date.today().isoformat()}, {machine()}"
            + (", quick sizes" if args.quick else ""),
        }
    cpu = (
        resource.getrusage(resource.RUSAGE_SELF).ru_utime
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    )
    print(f"CPU time (this process and its children): {cpu:.0f} s")
    if not args.no_write:
        # re-read: another run of this command (another suite) may have written meanwhile
        latest = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        latest.update({k: v for k, v in results.items() if k in ran})
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(latest, indent=1) + "\n")
        write_doc(latest)
        print(f"wrote {RESULTS.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
