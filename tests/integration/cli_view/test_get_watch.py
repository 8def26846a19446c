"""``sluice get rollout --watch`` as a separate process, while the real operator moves the
Rollout: in plain text (stdout a pipe) and live under a pseudo-terminal.

The CLI runs as a subprocess so the operator (in this test's event loop) keeps running while it
watches; blocking reads of the child's output run in a thread for the same reason.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pexpect  # type: ignore[import-untyped]
import pytest

from tests.integration.cli_view.conftest import normalize
from tests.integration.operator.conftest import OperatorHarness, canary, healthy
from tests.support.kube import create_rollout, patch_rollout

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
COMMAND = [sys.executable, "-m", "rollouts.cli.main", "get", "rollout", "web", "-n", "ns", "-w"]
STEPS: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}]


def child_env(kubeconfig: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KUBECONFIG=str(kubeconfig), NO_PROXY="127.0.0.1,localhost", **extra)
    return env


async def at_the_pause(h: OperatorHarness) -> None:
    create_rollout(h.api, canary(steps=STEPS))
    await h.wait_status(healthy, what="first revision Healthy")
    h.set_image("web:2")
    await h.wait_status(
        lambda s: s.get("currentStepIndex") == 1 and s["phase"] == "Paused", what="at the pause"
    )


async def read_until(
    stream: asyncio.StreamReader, text: str, seen: list[str], timeout: float = 10
) -> None:
    async def loop() -> None:
        while text not in "".join(seen):
            line = await stream.readline()
            if not line:
                raise AssertionError(f"output ended before {text!r}:\n{''.join(seen)}")
            seen.append(line.decode())

    try:
        await asyncio.wait_for(loop(), timeout)
    except TimeoutError:
        raise AssertionError(f"no {text!r} within {timeout}s; output:\n{''.join(seen)}") from None


async def test_plain_watch_prints_each_change_and_ends_when_deleted(
    harness: OperatorHarness, kubeconfig: Path
) -> None:
    h = harness
    await at_the_pause(h)
    child = await asyncio.create_subprocess_exec(
        *COMMAND,
        cwd=ROOT,
        env=child_env(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    seen: list[str] = []
    try:
        await read_until(child.stdout, "Phase:     Paused", seen)
        await read_until(child.stdout, "Events", seen)
        h.request("promote", "w1")
        await read_until(child.stdout, "Phase:     Healthy", seen)
        await asyncio.sleep(2.5)  # at least one refresh with nothing new: no new block
        # deleted outright (no finalizer left to wait on): what is tested is the watch's end
        await h.stop()
        patch_rollout(h.api, "ns", "web", {"metadata": {"finalizers": None}})
        kubernetes.client.CustomObjectsApi(h.api).delete_namespaced_custom_object(
            "sluice.dev", "v1alpha1", "ns", "rollouts", "web"
        )
        try:
            code = await asyncio.wait_for(child.wait(), 15)
        except TimeoutError:
            raise AssertionError("still watching 15s after the delete:\n" + "".join(seen)) from None
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    seen.append((await child.stdout.read()).decode())
    out, err = "".join(seen), (await child.stderr.read()).decode()
    assert code == 1, (out, err)
    assert err.strip() == "Error: rollout ns/web was deleted", err
    blocks = out.split("\n\nRollout ns/web")
    assert len(blocks) >= 2, out
    # a new block only when the view changed, not when only its ages moved on
    normalized = [normalize(b) for b in blocks]
    assert all(a != b for a, b in itertools.pairwise(normalized)), out
    assert "Phase:     Paused" in blocks[0] and "Phase:     Healthy" in blocks[-1]


async def test_live_view_redraws_and_exits_on_ctrl_c(
    harness: OperatorHarness, kubeconfig: Path
) -> None:
    h = harness
    await at_the_pause(h)
    log = io.StringIO()
    child = pexpect.spawn(
        COMMAND[0],
        COMMAND[1:],
        cwd=str(ROOT),
        env=child_env(kubeconfig, TERM="xterm", COLUMNS="120", LINES="40"),
        dimensions=(40, 120),
        encoding="utf-8",
        timeout=10,
    )
    child.logfile_read = log
    try:
        await asyncio.to_thread(child.expect, "Paused")
        await asyncio.to_thread(child.expect, "waits for a person")
        h.request("promote", "w2")
        await asyncio.to_thread(child.expect, "Healthy")
        child.sendintr()
        await asyncio.to_thread(child.expect, pexpect.EOF, 5)
    finally:
        child.close(force=True)
    output = log.getvalue()
    assert child.exitstatus in (0, 130), (child.exitstatus, child.signalstatus, output[-2000:])
    assert "Traceback" not in output
    assert "\x1b[" in output  # drawn with terminal control sequences, not as plain text
