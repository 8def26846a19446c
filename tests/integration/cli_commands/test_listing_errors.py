"""``sluice list rollouts`` over rollouts the operator runs, and the one-line errors of every
cluster-facing command (no such rollout, no permission, no cluster, nothing listening)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import kubernetes
import pytest

from tests.integration.operator.conftest import OperatorHarness, canary, healthy
from tests.support.kube import RunningEmulator, create_rollout, write_kubeconfig

from .conftest import sluice

pytestmark = pytest.mark.integration


def columns(line: str) -> list[str]:
    return line.split()


async def test_list_shows_each_rollout_of_the_namespace_and_with_A_of_all(
    harness: OperatorHarness,
) -> None:
    h = harness
    create_rollout(h.api, canary("web", steps=[{"setWeight": 25}, {"pause": {}}]))
    create_rollout(h.api, canary("shop", steps=[{"setWeight": 25}, {"pause": {}}]))
    elsewhere = canary("web", steps=[{"setWeight": 25}, {"pause": {}}])
    elsewhere["metadata"]["namespace"] = "other"
    create_rollout(h.api, elsewhere)
    await h.wait_status(healthy, what="web Healthy")
    await h.wait_status(healthy, "shop", what="shop Healthy")
    h.set_image("web:2")
    web = await h.wait_status(lambda s: s.get("phase") == "Paused", what="web paused")

    result = sluice("list", "rollouts", "-n", "ns")
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert columns(header) == [
        "NAME",
        "STRATEGY",
        "PHASE",
        "STEP",
        "WEIGHT",
        "STABLE",
        "CANARY",
        "AGE",
        "MESSAGE",
    ]
    shop = h.status("shop")
    assert [columns(r)[:7] for r in rows] == [
        ["shop", "canary", "Healthy", "-", "0%", shop["stableRevision"], "-"],
        ["web", "canary", "Paused", "2/2", "25%", web["stableRevision"], web["currentRevision"]],
    ]
    assert rows[1].endswith("paused at a pause step")
    # aligned: every column starts where its header does
    for name in ("PHASE", "WEIGHT", "MESSAGE"):
        at = header.index(name)
        assert all(r[at - 2 : at] == "  " and r[at] != " " for r in rows), name

    everywhere = sluice("list", "rollouts", "-A")
    assert everywhere.exit_code == 0, everywhere.output
    header, *rows = everywhere.output.splitlines()
    assert columns(header)[:2] == ["NAMESPACE", "NAME"]
    assert [columns(r)[:2] for r in rows] == [["ns", "shop"], ["ns", "web"], ["other", "web"]]


def test_an_empty_namespace(kubeconfig: Path) -> None:
    result = sluice("list", "rollouts", "-n", "empty")
    assert result.exit_code == 0
    assert result.output == "No rollouts in namespace empty.\n"


@pytest.mark.parametrize(
    "command",
    [
        ["status", "nope", "--timeout", "0"],
        ["promote", "nope"],
        ["abort", "nope", "--no-wait"],
    ],
)
def test_no_such_rollout(kubeconfig: Path, command: list[str]) -> None:
    result = sluice(*command, "-n", "ns")
    assert result.exit_code == (4 if command[0] == "status" else 1)
    assert result.output == "Error: rollout ns/nope: not found\n"


@pytest.mark.parametrize(
    ("command", "method"),
    [
        (["list", "rollouts"], "GET"),
        (["status", "web", "--timeout", "0"], "GET"),
        (["pause", "web", "--no-wait"], "PATCH"),
    ],
)
def test_forbidden(
    kube_emulator: RunningEmulator,
    api_client: kubernetes.client.ApiClient,
    command: list[str],
    method: str,
) -> None:
    create_rollout(api_client, canary())
    kube_emulator.inject(
        method=method, plural="rollouts", status=403, times=None, message="rollouts is forbidden"
    )
    result = sluice(*command, "-n", "ns")
    assert result.exit_code == (4 if command[0] == "status" else 1), result.output
    [line] = result.output.splitlines()
    assert line.startswith("Error: ") and ": forbidden: rollouts is forbidden" in line


def test_no_kubeconfig(tmp_path: Path) -> None:
    missing = tmp_path / "nothing"
    for command in (["list", "rollouts"], ["promote", "web"], ["status", "web"]):
        result = sluice(*command, "--kubeconfig", str(missing))
        assert result.exit_code == (4 if command[0] == "status" else 1)
        assert result.output == (
            f"Error: no cluster configured: kubeconfig {missing} does not exist "
            "(set KUBECONFIG or pass --kubeconfig)\n"
        )


def test_nothing_listening(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    config = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    result = sluice("list", "rollouts", "--kubeconfig", str(config))
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("Error: list rollouts in namespace default: cannot reach the cluster")
    assert f"127.0.0.1:{port}" in line


def test_no_rollout_kind_in_the_cluster(kube_emulator: RunningEmulator, kubeconfig: Path) -> None:
    """The collection itself is 404 (no CRD): the hint is to install Sluice, not "not found"."""
    kube_emulator.inject(method="GET", plural="rollouts", status=404, times=None)
    result = sluice("promote", "web", "-n", "ns")
    assert result.exit_code == 1
    assert result.output == (
        "Error: rollout ns/web: the cluster has no Rollout kind (sluice.dev/v1alpha1); "
        "is Sluice installed? (kubectl apply -k deploy/)\n"
    )


def test_ctrl_c_while_status_waits_exits_130_without_a_traceback(
    api_client: kubernetes.client.ApiClient, kubeconfig: Path
) -> None:
    create_rollout(api_client, canary())  # no operator: status waits for it to report
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollouts.cli.main", "status", "web", "-n", "ns", "--timeout", "1m"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # it is waiting now, past imports and connection
        assert first.rstrip().endswith("rollout ns/web: waiting for the controller to report")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "interrupted"
