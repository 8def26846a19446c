"""``sluice run`` as the container runs it: a real subprocess against the emulator, scraped.

What the in-loop operator tests cannot show: the installed command parses its flags, starts
``/metrics`` and the liveness endpoint on the ports given, logs JSON lines, and stops cleanly on
SIGTERM (what the kubelet sends). The metrics are read the way Prometheus reads them, through
``prometheus_client``'s text parser, not by string matching.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import kubernetes
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from rollouts.cli.main import cli
from tests.support.kube import (
    RunningEmulator,
    create_rollout,
    create_service,
    get_rollout,
    patch_rollout,
    ready_slots,
)
from tests.support.patience import patience

from .conftest import canary, healthy

pytestmark = pytest.mark.integration

T = TypeVar("T")
NS = "ns"
# The metrics issue 5 names, as sample names in the exposition (counters end in _total).
METRICS = (
    "sluice_rollout_info",
    "sluice_rollout_weight",
    "sluice_rollout_step",
    "sluice_rollout_phase_transitions_total",
    "sluice_reconcile_duration_seconds_count",
    "sluice_reconcile_errors_total",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sluice_command() -> list[str]:
    """The installed ``sluice`` script next to this interpreter (what the image runs)."""
    script = Path(sys.executable).with_name("sluice")
    if script.exists():
        return [str(script)]
    found = shutil.which("sluice")
    assert found, "the sluice console script is not installed (pip install -e .)"
    return [found]


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    timeout = patience(timeout)  # stretched for a loaded machine; see tests/support/patience.py
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, AssertionError, KeyError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), bytes(response.read())


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    log: Path
    metrics_port: int
    liveness_port: int

    def scrape(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """/metrics as Prometheus parses it: sample name -> [(labels, value)]."""
        code, body = get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        assert code == 200
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return out

    def value(self, name: str, **labels: str) -> float | None:
        for have, value in self.scrape().get(name, []):
            if all(have.get(k) == v for k, v in labels.items()):
                return value
        return None

    def lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.strip()]


@pytest.fixture()
def sluice_run(
    kubeconfig: Path, kube_emulator: RunningEmulator, tmp_path: Path
) -> Iterator[Process]:
    """``sluice run`` serving namespace ns, on free ports, logging JSON to a file."""
    metrics_port, liveness_port = free_port(), free_port()
    log = tmp_path / "sluice.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_PROXY": "127.0.0.1,localhost"}
    env.pop("KUBERNETES_SERVICE_HOST", None)  # never mistake the test machine for a Pod
    args = [
        "run",
        "--namespace",
        NS,
        "--standalone",
        "--metrics-port",
        str(metrics_port),
        "--liveness-port",
        str(liveness_port),
        "--log-format",
        "json",
    ]
    out: IO[bytes]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*sluice_command(), *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    process = Process(proc, log, metrics_port, liveness_port)
    try:
        yield process
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_sluice_run_serves_metrics_liveness_and_json_logs(
    sluice_run: Process, api_client: kubernetes.client.ApiClient
) -> None:
    p = sluice_run
    for name in ("web", "web-canary"):
        create_service(api_client, NS, name, {"app": "web"})
    create_rollout(api_client, canary(steps=[{"setWeight": 25}, {"pause": {}}]))
    create_rollout(api_client, canary(name="shop", steps=[{"setWeight": 150}]))  # invalid

    def status(name: str = "web") -> dict[str, Any]:
        return dict(get_rollout(api_client, NS, name).get("status") or {})

    def ready_and(predicate: Callable[[dict[str, Any]], bool]) -> Callable[[], bool]:
        """Play the Deployment controller while waiting (the emulator has none)."""

        def check() -> bool:
            ready_slots(api_client, NS, "web")
            return predicate(status())

        return check

    wait_until(ready_and(healthy), 30, "web Healthy (process start included)")
    wait_until(lambda: status("shop").get("phase") == "Degraded", 10, "shop stalled")

    # liveness answers while the operator runs; the probe reports the Rollouts it serves (kopf
    # collects probes on the first request and caches them 10 s: both are served by now)
    code, body = get(f"http://127.0.0.1:{p.liveness_port}/healthz")
    assert code == 200 and json.loads(body) == {"rollouts": 2}

    samples = p.scrape()
    assert set(METRICS) <= set(samples), sorted(samples)
    assert samples["sluice_reconcile_errors_total"] == [({}, 0.0)]
    assert (p.value("sluice_reconcile_duration_seconds_count") or 0) >= 1
    info = {labels["rollout"]: labels for labels, v in samples["sluice_rollout_info"] if v == 1}
    assert info["web"] == {
        "namespace": NS,
        "rollout": "web",
        "phase": "Healthy",
        "strategy": "canary",
        "router": "none",
    }
    assert info["shop"]["phase"] == "Degraded"  # invalid, and served alongside the valid one
    assert p.value("sluice_rollout_weight", rollout="web") == 0.0

    # a new revision: step 1 sets 25%, step 2 pauses for a person; /metrics follows
    template = get_rollout(api_client, NS, "web")["spec"]["template"]
    template["spec"]["containers"][0]["image"] = "web:2"
    patch_rollout(api_client, NS, "web", {"spec": {"template": template}})
    wait_until(
        ready_and(lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 1),
        20,
        "paused at 25%",
    )
    wait_until(
        lambda: p.value("sluice_rollout_weight", rollout="web") == 25.0, 5, "weight 25 scraped"
    )
    assert p.value("sluice_rollout_step", rollout="web") == 1.0
    assert p.value("sluice_rollout_info", rollout="web", phase="Paused") == 1.0
    assert p.value("sluice_rollout_info", rollout="web", phase="Healthy") is None  # replaced
    transitions = {
        (labels["from_phase"], labels["to_phase"]): value
        for labels, value in p.scrape()["sluice_rollout_phase_transitions_total"]
        if labels["rollout"] == "web"
    }
    assert transitions[("Healthy", "Progressing")] == 1.0
    assert transitions[("Progressing", "Paused")] == 1.0

    # SIGTERM, as the kubelet stops a Pod: the process exits cleanly and the endpoints go away
    p.proc.send_signal(signal.SIGTERM)
    assert p.proc.wait(timeout=15) == 0
    with pytest.raises(urllib.error.URLError):
        get(f"http://127.0.0.1:{p.liveness_port}/healthz")

    # every line kopf and Sluice logged is one JSON object
    records = [json.loads(line) for line in p.lines()]
    assert records and all({"message", "severity", "timestamp"} <= set(r) for r in records)
    messages = [r["message"] for r in records]
    routine = ("Timer 'tick' succeeded", "Handler 'slot-readiness' succeeded")
    assert not [m for m in messages if m.startswith(routine)]
    # a Deployment status update is not worth a line (a handler still running at SIGTERM is
    # logged as cancelled: that is shutdown, not routine)
    invalid = [r for r in records if "is invalid" in r["message"]]
    assert invalid and invalid[0]["severity"] == "warn"  # kopf's JSON spelling
    assert "spec.strategy.canary.steps[0].setWeight" in invalid[0]["message"]


def test_sluice_run_help_lists_its_flags() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert result.exit_code == 0, result.output
    for flag in (
        "--namespace",
        "--all-namespaces",
        "--metrics-port",
        "--liveness-port",
        "--log-format",
        "--priority",
        "--standalone",
        "--prometheus-url",
    ):
        assert flag in result.output, flag
    assert "[json|text]" in result.output
