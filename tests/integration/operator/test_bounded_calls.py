"""Calls that hang, and watch streams that carry errors, under the real kopf operator.

A router object whose reads hang (the server answers after 300 s) used to hold a worker thread and
its Rollout's lock for those 300 s: 25 of them stopped every healthy Rollout. Every call now has a
read timeout, bounded retries and a per-Rollout backoff, so a hung object delays only its Rollout.
And an ERROR event of code 500/503 inside a watch stream used to stop the controller (kopf raises
on any code but 410); it now restarts that watch (``rollouts.watch_errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from rollouts.settings import Settings
from tests.support.kube import create_rollout, ready_slots
from tests.support.patience import patience

from .conftest import OperatorHarness, canary, fast_settings, healthy
from .test_routing_errors import GROUP, PLURAL, custom

pytestmark = pytest.mark.integration

HUNG = 22  # more hung Rollouts than worker threads (20, the default)
HEALTHY = 2
HANG = 300.0
VERSION = "v1"
"""The controller watches VirtualServices at v1beta1 and serves their reads from that watch; at
another configured version it reads each by GET, which is what this test hangs."""
STEPS = [{"setWeight": 25}, {"pause": {}}]


@pytest.fixture()
def operator_settings() -> Settings:
    return fast_settings(
        workers=20,
        router_timeout=5.0,
        request_timeout=20.0,
        istio_version=VERSION,
    )


def create_vs(h: OperatorHarness, name: str) -> None:
    primary = {
        "name": "primary",
        "route": [
            {"destination": {"host": name}, "weight": 100},
            {"destination": {"host": f"{name}-canary"}, "weight": 0},
        ],
    }
    doc = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": h.namespace},
        "spec": {"hosts": [f"{name}.example.com"], "http": [primary]},
    }
    custom(h).create_namespaced_custom_object(GROUP, VERSION, h.namespace, PLURAL, doc)


def vs_weight(h: OperatorHarness, name: str) -> int:
    vs = custom(h).get_namespaced_custom_object(GROUP, VERSION, h.namespace, PLURAL, name)
    return int(vs["spec"]["http"][0]["route"][1].get("weight") or 0)


def routed(name: str) -> dict[str, object]:
    doc = canary(name, steps=STEPS)
    doc["spec"]["strategy"]["canary"]["trafficRouting"] = {
        "istio": {"virtualService": {"name": name, "routes": ["primary"]}}
    }
    return doc


def at_pause(st: dict[str, object]) -> bool:
    return st.get("phase") == "Paused" or (
        st.get("currentStepIndex") == 1 and st.get("phase") in ("Paused", "Progressing")
    )


@contextlib.asynccontextmanager
async def keep_ready(h: OperatorHarness, names: list[str]) -> AsyncIterator[None]:
    """Play the Deployment controller for ``names`` only, and gently: the harness's own loop lists
    every Rollout's Deployments 20 times a second, which at 25 Rollouts is the emulator's whole
    CPU (kmock re-scans its request history on every request)."""

    async def loop() -> None:
        while True:
            for name in names:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(ready_slots, h.api, h.namespace, name)
            await asyncio.sleep(1.0)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def poll(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Wait for ``check`` polling twice a second (the harness polls 20 times a second, which
    with 25 Rollouts is more than the emulator serves: its cost per request grows with the
    requests it has served)."""
    deadline = time.monotonic() + patience(timeout)
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if await asyncio.to_thread(check):
                return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def test_hung_router_reads_delay_only_their_own_rollouts(harness: OperatorHarness) -> None:
    h = harness
    h.auto_ready = False
    hung = [f"hung-{i}" for i in range(HUNG)]
    fine = [f"fine-{i}" for i in range(HEALTHY)]
    async with keep_ready(h, fine):
        await _hung_and_fine(h, hung, fine)


async def _hung_and_fine(h: OperatorHarness, hung: list[str], fine: list[str]) -> None:
    for name in hung + fine:
        create_vs(h, name)
    faults = [
        h.emulator.inject(
            method="GET", plural=PLURAL, name=name, status=None, delay=HANG, times=None
        )
        for name in hung
    ]
    for name in hung:
        create_rollout(h.api, routed(name))
    # every worker thread is soon waiting on a hung read ...
    await poll(lambda: sum(f.hits > 0 for f in faults) >= 20, "20 hung reads")
    for name in fine:
        create_rollout(h.api, routed(name))
    # ... and the healthy Rollouts still settle, then roll a new revision out to the first step
    for name in fine:
        await poll(lambda n=name: healthy(h.status(n)), f"{name} Healthy")
    for name in fine:
        h.set_image("web:2", name=name)
    for name in fine:
        await poll(lambda n=name: vs_weight(h, n) == 25, f"{name} at 25%")
    assert sum(f.hits for f in faults) >= HUNG, "every hung Rollout kept trying its router"

    # a Rollout in flight whose router reads hang for a while: its abort still lands, in seconds
    target = fine[0]
    slow = h.emulator.inject(
        method="GET", plural=PLURAL, name=target, status=None, delay=HANG, times=3
    )
    started = time.monotonic()
    h.request("abort", "a1", name=target)
    await poll(
        lambda: (
            (st := h.status(target)).get("phase") == "Degraded"
            and (st.get("weights") or {}).get("canary") == 0
        ),
        "aborted, weight 0",
    )
    elapsed = time.monotonic() - started
    assert slow.hits == 3, "the controller's reads met the hang"
    # without read timeouts each of the 3 hung reads would hold the Rollout for 300 s
    assert elapsed < HANG / 2, f"the abort waited out the hung reads by their timeout ({elapsed}s)"
    h.emulator.clear_faults()  # the test's own read of the object may go through now
    assert vs_weight(h, target) == 0


async def test_watch_errors_of_any_code_restart_the_watch(harness: OperatorHarness) -> None:
    """A server that answers the Rollout watch with ERROR events (500, then 503) several times
    in a row: the operator keeps running and serves Rollouts created meanwhile."""
    h = harness
    await h.stop()
    errors = [
        h.emulator.inject(method="GET", plural="rollouts", watch_error=code, times=2)
        for code in (500, 503)
    ]
    await h.start()
    create_rollout(h.api, canary())
    await h.wait_for(lambda: all(f.hits == 2 for f in errors), timeout=20, what="4 watch errors")
    st = await h.wait_status(healthy, timeout=30, what="Healthy after the watch restarts")
    assert st["phase"] == "Healthy"
    assert h.task is not None and not h.task.done(), "the operator is still running"
