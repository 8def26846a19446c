"""``sluice status`` follows a rollout to its end: by watch, by polling, and by polling when the
watch is forbidden, never fooled by a stale status or another Rollout's events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from rollouts.cli import connection as kube
from tests.integration.operator.conftest import OperatorHarness, canary, healthy
from tests.support.kube import create_rollout
from tests.support.patience import patience

from .conftest import sluice_in_thread
from .test_status import TO_THE_END, first_revision

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "how", ["watch", "poll", "watch forbidden"], ids=["watch", "poll", "watch-forbidden"]
)
async def test_exit_0_once_the_new_revision_is_stable_not_on_the_old_healthy(
    harness: OperatorHarness, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    rev1 = await first_revision(h, TO_THE_END)
    # another Rollout of the namespace, Healthy at once: the watch sees it too (the emulator
    # ignores field selectors); status must not take its Healthy for web's
    create_rollout(h.api, canary("shop", steps=TO_THE_END))
    options = {"watch": [], "poll": ["--poll", "--interval", "0.1"]}.get(how, ["--interval", "0.1"])
    if how == "watch forbidden":  # RBAC grants get but not watch: status falls back to polling

        def forbidden(*_: Any, **__: Any) -> Any:
            raise ApiException(status=403, reason="Forbidden")

        monkeypatch.setattr(kube, "_watch", forbidden)
    # the controller is down when the new spec lands: the status still says Healthy, about rev1
    await h.stop()
    h.set_image("web:2")
    # counts status's reads of web (passed through unchanged: no status, no delay)
    looked = h.emulator.inject(method="GET", plural="rollouts", name="web", status=None, times=None)
    timeout = f"{patience(20):g}s"  # an upper bound, stretched for a loaded machine
    waiting = asyncio.create_task(
        sluice_in_thread("status", "web", "-n", "ns", "--timeout", timeout, *options)
    )
    await h.wait_for(lambda: looked.hits >= 1, what="status reading the stale rollout")
    h.emulator.clear_faults()
    await h.start()
    result = await waiting

    assert result.exit_code == 0, result.output
    st = h.status()
    assert healthy(st) and st["stableRevision"] != rev1  # it waited for the new revision
    lines = result.output.splitlines()
    # the stale Healthy is not shown as if it were progress; what status waits for is
    assert lines[0].endswith("rollout ns/web: waiting for the controller to observe generation 2")
    assert lines[-1] == f"rollout ns/web is Healthy: revision {st['stableRevision']} is stable"
    # one line per change, the rollout's way through its steps visible in the log
    assert any("Progressing" in line and "canary  25%" in line for line in lines), lines
    assert any("canary  75%" in line for line in lines), lines
    assert len(lines) == len(set(line[8:] for line in lines)), "a line repeated unchanged"
