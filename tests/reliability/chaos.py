"""Chaos: the controller killed with SIGKILL at random moments while rollouts run, with and
without analysis; every rollout must end as an uninterrupted run of the same scenario ends.

Three kinds of Rollout, each behind an Istio VirtualService: ``plain`` (weights and pauses, no
analysis) and ``good`` (an analysis step over a healthy canary) must end Healthy on the new
revision; ``bad`` (the canary fails half its requests) must end Degraded with the canary's weight
back at 0 and the old revision still stable. The analysis reads a real Prometheus fed with each
Rollout's traffic. Also checked: no Rollout stuck (each reaches its end after the kills stop), one
RolloutAborted Event per aborted Rollout however many restarts it saw, and no AnalysisRun left
Running.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.reliability.cluster import SETTINGS, Cluster, cluster, first_revisions, merge_report
from tests.support.kube import events_for, list_json
from tests.support.prometheus import PrometheusServer, Series, start_prometheus, unique_id

Kind = Literal["plain", "good", "bad"]
KINDS: tuple[Kind, ...] = ("plain", "good", "bad")
STEP_S = 0.25
W = "{{window}}"


@dataclass
class ChaosReport:
    rollouts: int = 0
    with_analysis: int = 0
    kills: int = 0
    kills_mid_rollout: int = 0
    """Kills that struck while at least one Rollout was still on its way."""
    in_flight_at_kills: int = 0
    """Rollouts on their way at each kill, summed over the kills."""
    restarts: int = 0
    as_expected: int = 0
    stuck: int = 0
    wrong_outcome: int = 0
    duplicate_events: int = 0
    runs_left_running: int = 0
    canary_weight_left: int = 0
    controller_exits: int = 0
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def merge(self, other: ChaosReport) -> None:
        merge_report(self, other)


def template(test_id: str) -> dict[str, Any]:
    def sel(errors: bool) -> str:
        code = ', code=~"5.."' if errors else ""
        return f'test_id="{test_id}", service={{{{args.canary-service}}}}{code}'

    query = (
        f"sum(increase(http_requests_total{{{sel(True)}}}[{W}])) / "
        f"sum(increase(http_requests_total{{{sel(False)}}}[{W}]))"
    )
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "error-ratio"},
        "spec": {
            "metrics": [
                {
                    "name": "error-ratio",
                    "kind": "value",
                    "interval": "1s",
                    "count": 3,
                    "provider": {"prometheus": {"query": query}},
                    "threshold": {"max": 0.1},
                }
            ]
        },
    }


def rollout(name: str, kind: Kind) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {"duration": "1s"}}]
    if kind != "plain":
        steps.append({"analysis": {"templates": [{"templateName": "error-ratio"}]}})
    steps += [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "labels": {"chaos/kind": kind}},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": f"{name}:1"}]},
            },
            "strategy": {
                "canary": {
                    "stableService": name,
                    "canaryService": f"{name}-canary",
                    "scaleDownDelaySeconds": 0,
                    "abortScaleDownDelaySeconds": 0,
                    "trafficRouting": {
                        "istio": {"virtualService": {"name": name, "routes": ["primary"]}}
                    },
                    "steps": steps,
                }
            },
        },
    }


def push_traffic(
    server: PrometheusServer, test_id: str, names: dict[str, Kind], seconds: float
) -> None:
    """Every Rollout's two Services at 40 requests/s: 1% errors, 50% on a bad canary."""
    t0 = time.time() - 10
    n = int((seconds + 10) / STEP_S)
    series: list[Series] = []
    for name, kind in names.items():
        for service, ratio in ((name, 0.01), (f"{name}-canary", 0.5 if kind == "bad" else 0.01)):
            for code, share in (("500", ratio), ("200", 1 - ratio)):
                labels = {
                    "__name__": "http_requests_total",
                    "test_id": test_id,
                    "service": service,
                    "code": code,
                }
                rate = 40 * share
                series.append(
                    (
                        labels,
                        [(int((t0 + i * STEP_S) * 1000), rate * i * STEP_S) for i in range(n + 1)],
                    )
                )
    for i in range(0, len(series), 200):
        server.push(series[i : i + 200])


def _status(doc: dict[str, Any] | None) -> dict[str, Any]:
    return (doc or {}).get("status") or {}


def _weights(c: Cluster) -> dict[str, int]:
    """Each VirtualService's canary weight."""
    items = list_json(
        c.api, f"/apis/networking.istio.io/v1beta1/namespaces/{c.namespace}/virtualservices"
    )
    out = {}
    for vs in items:
        routes = vs["spec"]["http"][0]["route"]
        out[vs["metadata"]["name"]] = int(routes[1].get("weight") or 0)
    return out


def _ended(kind: Kind, st: dict[str, Any], rev1: str | None) -> bool:
    if kind == "bad":
        return st.get("phase") == "Degraded"
    return (
        st.get("phase") == "Healthy"
        and st.get("stableRevision") not in (None, rev1)
        and st.get("currentRevision") == st.get("stableRevision")
    )


def chaos(
    count: int,
    seed: int,
    *,
    kills: int,
    kill_every: tuple[float, float] = (2.0, 6.0),
    settle_timeout: float = 240.0,
) -> ChaosReport:
    """``count`` Rollouts (a third of each kind) get a new revision; the controller is killed
    ``kills`` times at random intervals in ``kill_every`` while they run (0: uninterrupted, every
    Rollout updated at once). With kills, the updates come in ``kills`` waves, one before each
    kill (each wave holds every kind): updated all at once, most Rollouts ended within a few kills
    and the rest struck a settled fleet (18 of 48 kills mid-rollout), which tests little."""
    rng = random.Random(seed)
    started = time.monotonic()
    report = ChaosReport(rollouts=count)
    kinds = {f"c{seed}-{i}": KINDS[i % 3] for i in range(count)}
    report.with_analysis = sum(k != "plain" for k in kinds.values())
    test_id = unique_id("chaos")
    with (
        tempfile.TemporaryDirectory(prefix="sluice-chaos-prom-") as tmp,
        start_prometheus(Path(tmp)) as prom,
    ):
        push_traffic(prom, test_id, kinds, seconds=settle_timeout + 60 * kills + 300)
        with cluster(SETTINGS, prometheus_url=prom.url) as c:
            _run(c, rng, kinds, test_id, report, kills, kill_every, settle_timeout)
    report.seconds = time.monotonic() - started
    return report


def _run(
    c: Cluster,
    rng: random.Random,
    kinds: dict[str, Kind],
    test_id: str,
    report: ChaosReport,
    kills: int,
    kill_every: tuple[float, float],
    settle_timeout: float,
) -> None:
    c.create("analysistemplates", template(test_id))
    for name, kind in kinds.items():
        c.infrastructure(name)
        c.create("rollouts", rollout(name, kind))
    c.controller.start()
    rev1 = first_revisions(c, kinds, settle_timeout)
    names = list(kinds)  # consecutive names are of different kinds: each wave mixes them
    per = -(-len(names) // kills) if kills else len(names)
    waves = [names[i * per : (i + 1) * per] for i in range(kills)]
    if not kills:
        for name in names:
            c.set_image(name, f"{name}:2")
    for wave in waves:
        for name in wave:
            c.set_image(name, f"{name}:2")
        time.sleep(rng.uniform(*kill_every))
        if c.controller.exited_by_itself():
            report.controller_exits += 1
        snap = c.rollouts()
        in_flight = sum(not _ended(k, _status(snap.get(n)), rev1.get(n)) for n, k in kinds.items())
        report.kills_mid_rollout += int(in_flight > 0)
        report.in_flight_at_kills += in_flight
        c.controller.kill()
        report.kills += 1
        time.sleep(rng.uniform(0.0, 1.0))
        c.controller.start()
        report.restarts += 1
    _run_outcomes(c, kinds, rev1, report, settle_timeout)


def _run_outcomes(
    c: Cluster,
    kinds: dict[str, Kind],
    rev1: dict[str, str | None],
    report: ChaosReport,
    settle_timeout: float,
) -> None:
    """Wait for every Rollout to end as its kind must, then check what the end left behind."""
    deadline = time.monotonic() + settle_timeout
    snap: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        snap = c.rollouts()
        if all(_ended(k, _status(snap.get(n)), rev1.get(n)) for n, k in kinds.items()):
            break
        if c.controller.exited_by_itself():
            # counted as a failure; restarted as Kubernetes would, so the rest still says something
            report.controller_exits += 1
            c.controller.start()
        time.sleep(0.5)
    weights = _weights(c)
    runs = list_json(c.api, f"/apis/sluice.dev/v1alpha1/namespaces/{c.namespace}/analysisruns")
    running = Counter(
        (r["metadata"].get("labels") or {}).get("sluice.dev/rollout")
        for r in runs
        if ((r.get("status") or {}).get("phase") in (None, "Pending", "Running"))
    )
    aborted_events = Counter(
        (e.get("involvedObject") or {}).get("name")
        for e in events_for(c.api, c.namespace)
        if e.get("reason") == "RolloutAborted"
    )
    outcomes: Counter[str] = Counter()
    for name, kind in kinds.items():
        st = _status(snap.get(name))
        what = f"{name} ({kind})"
        outcomes[f"{kind}:{st.get('phase')}"] += 1
        ok = True
        if not _ended(kind, st, rev1.get(name)):
            ok = False
            if st.get("phase") in ("Healthy", "Degraded"):
                report.wrong_outcome += 1
                report.failures.append(f"{what}: ended {st.get('phase')}: {st.get('message')!r}")
            else:
                report.stuck += 1
                report.failures.append(f"{what}: stuck {st.get('phase')}: {st.get('message')!r}")
        if weights.get(name, 0) != 0:
            ok = False
            report.canary_weight_left += 1
            report.failures.append(f"{what}: canary weight left at {weights[name]}")
        if running.get(name):
            ok = False
            report.runs_left_running += 1
            report.failures.append(f"{what}: {running[name]} AnalysisRun(s) left running")
        expected_aborts = 1 if kind == "bad" else 0
        if aborted_events.get(name, 0) > expected_aborts:
            ok = False
            report.duplicate_events += 1
            report.failures.append(f"{what}: {aborted_events[name]} RolloutAborted Events")
        report.as_expected += int(ok)
    report.outcomes = dict(outcomes)
