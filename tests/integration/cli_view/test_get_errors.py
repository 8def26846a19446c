"""``sluice get rollout`` when it cannot show the Rollout: one line, exit 1, never a traceback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import kubernetes
import pytest
from click.testing import CliRunner, Result

from rollouts.cli.connection import REQUEST_TIMEOUT
from rollouts.cli.main import cli
from tests.integration.operator.conftest import canary
from tests.support.kube import RunningEmulator, create_rollout, write_kubeconfig

pytestmark = pytest.mark.integration


def get(*args: str) -> Result:
    return CliRunner().invoke(cli, ["get", "rollout", *args])


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_no_such_rollout(kubeconfig: Path, kube_emulator: RunningEmulator) -> None:
    line = one_line_error(get("nope", "-n", "ns"))
    assert line == "Error: rollout ns/nope: not found"


def test_no_such_rollout_while_watching(kubeconfig: Path, kube_emulator: RunningEmulator) -> None:
    line = one_line_error(get("nope", "-n", "ns", "--watch"))
    assert "rollout ns/nope" in line and "not found" in line


def test_forbidden(
    kubeconfig: Path, kube_emulator: RunningEmulator, api_client: kubernetes.client.ApiClient
) -> None:
    create_rollout(api_client, canary())
    kube_emulator.inject(method="GET", plural="rollouts", status=403, times=None)
    line = one_line_error(get("web", "-n", "ns"))
    assert "rollout ns/web: forbidden" in line


def test_forbidden_to_read_events(
    kubeconfig: Path, kube_emulator: RunningEmulator, api_client: kubernetes.client.ApiClient
) -> None:
    """The Rollout is readable but its events are not: the line says which read failed."""
    create_rollout(api_client, canary())
    kube_emulator.inject(method="GET", plural="events", status=403, times=None)
    line = one_line_error(get("web", "-n", "ns"))
    assert "events of rollout ns/web: forbidden" in line


def test_cluster_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago, and nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    line = one_line_error(get("web", "-n", "ns", "--kubeconfig", str(config)))
    elapsed = time.monotonic() - started
    assert "cannot reach the cluster" in line
    # a refused connection is reported as it happens, not after the request timeout
    assert elapsed < REQUEST_TIMEOUT, elapsed
