"""``sluice run`` against a cluster it cannot use: one line per attempt and one clear error,
never kopf's tracebacks (one per watcher, about a minute later)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from click.testing import CliRunner

from rollouts.cli import cluster_check
from rollouts.cli.main import cli
from tests.support.kube import RunningEmulator, write_kubeconfig

pytestmark = pytest.mark.integration

RUN = ["run", "--standalone", "--metrics-port", "18931", "--liveness-port", "18932"]


def use_kubeconfig(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # ``kubernetes`` reads KUBECONFIG once, at import (as tests/support/kube.py's fixture does)
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(cluster_check, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:], root.level = handlers, level  # `sluice run` configured logging in-process


def test_an_unreachable_cluster_is_one_line_per_attempt_then_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")  # discard port
    use_kubeconfig(monkeypatch, kubeconfig)
    result = CliRunner().invoke(cli, RUN)
    assert result.exit_code == 1
    *retries, error = result.output.strip().splitlines()
    assert error == (
        "Error: cannot reach the Kubernetes API at http://127.0.0.1:9 after 4 attempts: "
        "[Errno 111] Connection refused (check KUBECONFIG and its current context)"
    )
    assert len(retries) == 3 and all("sluice.startup" in line for line in retries), retries
    attempts = [r.getMessage() for r in caplog.records if r.name == "sluice.startup"]
    assert attempts == [
        "cannot reach the Kubernetes API at http://127.0.0.1:9: [Errno 111] Connection refused "
        f"(attempt {i}/4, next in 0.01s)"
        for i in (1, 2, 3)
    ]
    assert not [r for r in caplog.records if r.name.startswith("urllib3")]


def test_no_kubeconfig_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_kubeconfig(monkeypatch, tmp_path / "missing")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = CliRunner().invoke(cli, RUN)
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: no Kubernetes cluster configured: ")
    assert line.endswith("(set KUBECONFIG, or run in a Pod)")


def test_a_cluster_without_the_crds_is_named(
    kube_emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator serves sluice.dev; a path prefix that serves nothing stands for a cluster
    whose discovery has no such group (404), as one without the CRDs answers."""
    url = f"{kube_emulator.url}/nothing-here"
    use_kubeconfig(monkeypatch, write_kubeconfig(tmp_path / "kubeconfig", url))
    result = CliRunner().invoke(cli, RUN)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: the Kubernetes API at {url} serves no sluice.dev/v1alpha1: the CRDs are not "
        "installed (kubectl apply -k deploy/)"
    ]


def test_sluice_run_tunes_the_collector_before_the_operator_starts(
    kube_emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI reaches the emulator for real; the operator itself is replaced by one that only
    notes the collector's state it starts with and returns (``rollouts.gc_tuning``). The freeze
    is recorded instead of done: a freeze cannot be undone, and this test process goes on."""
    import gc

    from rollouts import gc_tuning, operator
    from rollouts.gc_tuning import THRESHOLDS

    use_kubeconfig(monkeypatch, write_kubeconfig(tmp_path / "kubeconfig", kube_emulator.url))
    calls: list[str] = []
    monkeypatch.setattr(gc_tuning, "_frozen", False)
    monkeypatch.setattr(gc_tuning.gc, "freeze", lambda: calls.append("freeze"))
    seen: dict[str, object] = {}

    async def started(settings: object, **_: object) -> None:
        seen["threshold"] = gc.get_threshold()
        seen["frozen"] = list(calls)

    before = gc.get_threshold()
    monkeypatch.setattr(operator, "run", started)
    try:
        result = CliRunner().invoke(cli, RUN)
    finally:
        gc.set_threshold(*before)
    assert result.exit_code == 0, result.output
    assert seen["threshold"] == THRESHOLDS
    assert seen["frozen"] == ["freeze"]
