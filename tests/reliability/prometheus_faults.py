"""Prometheus down, slow, answering NaN or nothing: under every inconclusive policy and for both
threshold and compare metrics, no rollout may promote, and none may be left waiting forever.

Each faulty Rollout has its own template: ``down`` points at a port nothing listens on, ``slow``
at a proxy that answers after longer than the template's timeout, ``nan`` and ``empty`` at the
real server with queries that return NaN or no series. Control Rollouts read the real server
with healthy traffic and must promote, so "never promoted" is not the trivial outcome of a
set-up that cannot promote at all.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import socket
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.reliability.chaos import push_traffic
from tests.reliability.cluster import SETTINGS, Cluster, cluster, first_revisions, merge_report
from tests.support.prometheus import start_prometheus, unique_id

Fault = Literal["down", "slow", "nan", "empty", "none"]
FAULTS: tuple[Fault, ...] = ("down", "slow", "nan", "empty")
POLICIES = ("pause", "promote", "abort")
METRICS = ("threshold", "compare")
W = "{{window}}"


@dataclass
class PrometheusReport:
    rollouts: int = 0
    controls: int = 0
    controls_promoted: int = 0
    promoted: int = 0
    unresolved: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def merge(self, other: PrometheusReport) -> None:
        merge_report(self, other)


@contextlib.contextmanager
def slow_proxy(target: str, delay: float) -> Iterator[str]:
    """An HTTP proxy to ``target`` that waits ``delay`` seconds before answering."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            time.sleep(delay)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            req = urllib.request.Request(target + self.path, data=body, method=self.command)
            for key in ("Content-Type",):
                if self.headers.get(key):
                    req.add_header(key, self.headers[key])
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    data, status = resp.read(), resp.status
            except Exception:
                data, status = b"", 502
            with contextlib.suppress(OSError):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        do_GET = _forward
        do_POST = _forward

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sel(test_id: str, service: str, errors: bool) -> str:
    code = ', code=~"5.."' if errors else ""
    return f'test_id="{test_id}", service={{{{args.{service}}}}}{code}'


def metric(kind: str, fault: Fault, test_id: str, address: str) -> dict[str, Any]:
    if fault == "nan":
        events = total = "vector(0) / vector(0)"
        value = "vector(0) / vector(0)"
    elif fault == "empty":
        events = total = value = 'sum(http_requests_total{test_id="no-such-series"})'
    else:

        def inc(service: str, errors: bool) -> str:
            return f"sum(increase(http_requests_total{{{_sel(test_id, service, errors)}}}[{W}]))"

        value = f"{inc('canary-service', True)} / {inc('canary-service', False)}"
        events, total = None, None
    prom: dict[str, Any] = {"address": address, "timeout": "1s"}
    if kind == "threshold":
        prom["query"] = value
        return {
            "name": "error-ratio",
            "kind": "value",
            "interval": "1s",
            "count": 3,
            "provider": {"prometheus": prom},
            "threshold": {"max": 0.1, "consecutiveErrorLimit": 2},
        }

    def arm(service: str) -> dict[str, str]:
        if events is not None and total is not None:
            return {"events": events, "total": total}
        inc_e = f"sum(increase(http_requests_total{{{_sel(test_id, service, True)}}}[{W}]))"
        inc_t = f"sum(increase(http_requests_total{{{_sel(test_id, service, False)}}}[{W}]))"
        return {"events": f"{inc_e} or vector(0)", "total": inc_t}

    prom["canary"], prom["baseline"] = arm("canary-service"), arm("stable-service")
    return {
        "name": "error-rate",
        "kind": "counts",
        "interval": "1s",
        "count": 8,
        "provider": {"prometheus": prom},
        "compare": {"direction": "increase", "tolerance": 1.5},
    }


def _template(name: str, policy: str, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": metrics, "inconclusive": policy},
    }


def _rollout(name: str) -> dict[str, Any]:
    from tests.reliability.chaos import rollout

    doc = rollout(name, "good")
    for step in doc["spec"]["strategy"]["canary"]["steps"]:
        if "analysis" in step:
            step["analysis"]["templates"][0]["templateName"] = name
    return doc


def prometheus_faults(rounds: int = 1, timeout: float = 180.0) -> PrometheusReport:
    """Every fault × policy × metric kind, ``rounds`` times, plus one control per round and
    policy; one cluster and controller for all."""
    report = PrometheusReport()
    started = time.monotonic()
    test_id = unique_id("promfault")
    with (
        tempfile.TemporaryDirectory(prefix="sluice-promfault-") as tmp,
        start_prometheus(Path(tmp)) as prom,
        slow_proxy(prom.url, delay=3.0) as slow,
    ):
        addresses = {
            "down": f"http://127.0.0.1:{closed_port()}",
            "slow": slow,
            "nan": prom.url,
            "empty": prom.url,
            "none": prom.url,
        }
        cases: dict[str, tuple[Fault, str, str]] = {}
        for r, fault, policy, kind in itertools.product(range(rounds), FAULTS, POLICIES, METRICS):
            cases[f"p{r}-{fault}-{policy}-{kind}"] = (fault, policy, kind)
        for r, policy in itertools.product(range(rounds), POLICIES):
            cases[f"p{r}-none-{policy}-threshold"] = ("none", policy, "threshold")
        push_traffic(prom, test_id, dict.fromkeys(cases, "good"), seconds=timeout + 300)
        with cluster(SETTINGS, prometheus_url=prom.url) as c:
            _run(c, cases, addresses, test_id, report, timeout)
    report.seconds = time.monotonic() - started
    return report


def _run(
    c: Cluster,
    cases: dict[str, tuple[Fault, str, str]],
    addresses: dict[str, str],
    test_id: str,
    report: PrometheusReport,
    timeout: float,
) -> None:
    for name, (fault, policy, kind) in cases.items():
        c.create(
            "analysistemplates",
            _template(name, policy, [metric(kind, fault, test_id, addresses[fault])]),
        )
        c.infrastructure(name)
        c.create("rollouts", _rollout(name))
    c.controller.start()
    rev1 = first_revisions(c, cases, timeout)
    for name in cases:
        c.set_image(name, f"{name}:2")

    def ended(doc: dict[str, Any] | None, name: str) -> bool:
        st = (doc or {}).get("status") or {}
        if st.get("phase") == "Paused":
            # a timed pause step (the 1 s pauses) passes by itself: only a pause nothing ends
            # (inconclusive analysis) is an outcome
            reasons = {p.get("reason") for p in st.get("pauseConditions") or []}
            return reasons != {"CanaryPauseStep"}
        if st.get("phase") == "Degraded":
            return True
        return st.get("phase") == "Healthy" and st.get("stableRevision") not in (None, rev1[name])

    snap: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = c.rollouts()
        if all(ended(snap.get(n), n) for n in cases):
            break
        time.sleep(0.5)
    outcomes: Counter[str] = Counter()
    for name, (fault, _policy, _kind) in cases.items():
        st = (snap.get(name) or {}).get("status") or {}
        promoted = st.get("phase") == "Healthy" and st.get("stableRevision") not in (
            None,
            rev1[name],
        )
        outcomes[f"{fault}:{'Promoted' if promoted else st.get('phase')}"] += 1
        if fault == "none":
            report.controls += 1
            report.controls_promoted += int(promoted)
            if not promoted:
                report.failures.append(f"{name}: control not promoted: {st.get('message')!r}")
            continue
        report.rollouts += 1
        if promoted:
            report.promoted += 1
            report.failures.append(f"{name}: PROMOTED on {fault} Prometheus")
        elif not ended(snap.get(name), name):
            report.unresolved += 1
            report.failures.append(f"{name}: still {st.get('phase')}: {st.get('message')!r}")
    report.outcomes = dict(outcomes)
