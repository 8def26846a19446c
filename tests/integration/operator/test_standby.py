"""A warm standby: two controller processes in one peering, one works, the other waits.

Two ``rollouts.operator.run`` processes (as two pods of the controller Deployment would be), each
with its own client, identity (``POD_ID``) and peering priority, against one emulator. The
emulator records each request's User-Agent, so which replica wrote what is checked, not assumed.

A (priority 100) serves the Rollout; B (priority 50) joins the same ClusterKopfPeering and writes
nothing while A is alive, through a whole first rollout and a new revision up to a pause for a
person. A is then stopped as a pod is (SIGTERM: kopf leaves the peering on its way out); B
resumes at once, acts on the promotion, and the promotion happens once.

The other way round, a working replica outranked by a new one (a restarted standby draws a new
random priority) holds its own reconcile queue while kopf pauses it, and resumes from the Rollout
as the other replica left it.

(In one process the two operators did not pause each other; see test_sharding.py. Two processes
do, as two pods do.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from rollouts.peering import CLUSTER_PEERINGS, PEERING_GROUP, PEERING_VERSION
from tests.support.controller_process import ControllerProcess
from tests.support.kube import RunningEmulator, create_rollout, get_json, peering_emulator

from .conftest import (
    OperatorHarness,
    api_client,
    canary,
    fast_settings,
    healthy,
    kubeconfig,
    namespace,
    services,
    write_positions,
    writes_by,
)

__all__ = ["api_client", "kubeconfig", "namespace", "services"]

pytestmark = pytest.mark.integration

PEERING = f"/apis/{PEERING_GROUP}/{PEERING_VERSION}/{CLUSTER_PEERINGS}/sluice.dev"

kube_emulator = pytest.fixture(name="kube_emulator")(peering_emulator)


Start = Callable[..., ControllerProcess]


@pytest.fixture()
def replica(kubeconfig: Path, tmp_path: Path) -> Iterator[Start]:
    """Starts a controller process named ``agent`` at ``priority`` with the operator tests'
    settings and ``changes`` (stopped at the end)."""
    started: list[ControllerProcess] = []

    def start(agent: str, priority: int, **changes: Any) -> ControllerProcess:
        settings = fast_settings(standalone=False, priority=priority, **changes)
        proc = ControllerProcess(kubeconfig, settings, tmp_path, agent=agent)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(Exception):
            proc.stop()


@pytest.fixture()
async def h(
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
    namespace: str,
    services: list[str],
) -> AsyncIterator[OperatorHarness]:
    """The test's view of the cluster, playing the Deployment controller (slot Deployments become
    ready); no operator of its own: the replicas are the processes."""
    harness = OperatorHarness(api_client, kube_emulator, fast_settings(), namespace)
    api_client.user_agent = "the-test"
    ready = asyncio.create_task(harness._keep_ready())
    yield harness
    ready.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ready


def peers(api: kubernetes.client.ApiClient) -> set[str]:
    """The identities in the peering object's status (kopf's heartbeat of each replica)."""
    doc = get_json(api, PEERING) or {}
    return {k for k, v in (doc.get("status") or {}).items() if v}


def promoted_once(h: OperatorHarness) -> None:
    promoted = [e for e in h.events() if e["reason"] == "RolloutPromoted"]
    assert sum(int(e.get("count") or 1) for e in promoted) == 1, h.reasons()


def one_at_a_time(h: OperatorHarness, first: str, then: str) -> None:
    """Every write of ``first`` came before every write of ``then``: never both at once."""
    assert max(write_positions(h, first)) < min(write_positions(h, then))


async def test_the_standby_writes_nothing_until_the_active_replica_stops(
    h: OperatorHarness, replica: Start
) -> None:
    a = replica("replica-a", 100)
    create_rollout(h.api, canary("web"))
    await h.wait_status(healthy, timeout=60, what="first revision Healthy, by A")
    assert writes_by(h, "replica-a"), "A serves the Rollout"

    b = replica("replica-b", 50)
    await h.wait_for(
        lambda: {"replica-a", "replica-b"} <= peers(h.api),
        timeout=60,
        what="both replicas in the peering object",
    )
    h.set_image("web:2")
    paused = await h.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 3,
        timeout=60,
        what="paused for a person at 75%, by A",
    )
    assert paused["weights"]["canary"] == 75
    assert b.alive(), f"B is alive: {b.log_text()[-3000:]}"
    assert writes_by(h, "replica-b") == [], "B waited while A was active"

    assert a.stop() == 0, a.log_text()[-3000:]
    stopped = len(h.emulator.emulator.calls)
    await h.wait_for(
        lambda: "replica-a" not in peers(h.api),
        timeout=30,
        what="A gone from the peering object",
    )
    h.request("promote", "p1")
    done = await h.wait_status(healthy, timeout=60, what="Healthy, promoted by B")
    assert done["stableRevision"] == done["currentRevision"]
    assert writes_by(h, "replica-b"), "B did the rest"
    assert writes_by(h, "replica-a", since=stopped) == [], "A wrote nothing after it stopped"
    one_at_a_time(h, "replica-a", "replica-b")  # A held its queue as it began to stop
    promoted_once(h)
    assert b.alive(), b.log_text()[-3000:]


# a timed pause, so the working replica has a reconcile coming due when it is outranked
TIMED_STEPS = [
    {"setWeight": 25},
    {"pause": {"duration": "30s"}},
    {"setWeight": 75},
    {"pause": {}},  # waits for a person
]
PAUSED_LINE = "paused by kopf (peering sluice.dev@None"
RESUMED_LINE = "resumed: this replica works again"


async def test_a_working_replica_outranked_by_a_new_one_holds_its_reconciles_until_it_resumes(
    h: OperatorHarness, replica: Start
) -> None:
    """A restarted standby draws a new random priority, so half the time it outranks the working
    replica, which kopf then pauses. That replica's own queue must hold too: its Rollout's pause
    ends while it is paused, and acting on it from watches kopf stopped would step the Rollout
    beside the new replica. When the new replica stops, the first one resumes from the Rollout
    as the other left it (no step repeated, the promotion once)."""
    a = replica("replica-a", 50)
    create_rollout(h.api, canary("web", steps=TIMED_STEPS))
    await h.wait_status(healthy, timeout=60, what="first revision Healthy, by A")
    h.set_image("web:2")
    await h.wait_status(
        lambda s: s.get("currentStepIndex") == 1 and s["weights"]["canary"] == 25,
        timeout=60,
        what="in the 30 s pause at 25%, by A",
    )

    # kopf pauses every replica for a moment at its start, until it has read the peering
    pauses = a.log_text().count(PAUSED_LINE)
    b = replica("replica-b", 100)
    await h.wait_for(
        lambda: a.log_text().count(PAUSED_LINE) > pauses, timeout=30, what="A paused for B"
    )
    held_from = len(h.emulator.emulator.calls)
    assert h.status()["currentStepIndex"] == 1, "A was outranked before its pause ended"

    at_person = await h.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 3,
        timeout=90,
        what="past the timed pause, waiting for a person at 75%, by B",
    )
    assert at_person["weights"]["canary"] == 75
    assert writes_by(h, "replica-b"), "B moved the Rollout on"
    assert writes_by(h, "replica-a", since=held_from) == [], "A decided nothing while paused"
    assert a.alive(), a.log_text()[-3000:]

    resumes = a.log_text().count(RESUMED_LINE)
    assert b.stop() == 0, b.log_text()[-3000:]
    await h.wait_for(
        lambda: a.log_text().count(RESUMED_LINE) > resumes, timeout=90, what="A resumed"
    )
    h.request("promote", "p1")
    done = await h.wait_status(healthy, timeout=60, what="Healthy, promoted by A")
    assert done["stableRevision"] == done["currentRevision"]
    steps = [e["message"] for e in h.events() if e["reason"] == "StepCompleted"]
    assert len(steps) == len(set(steps)), f"a step repeated: {steps}"
    promoted_once(h)
    a_at, b_at = write_positions(h, "replica-a"), write_positions(h, "replica-b")
    assert not [p for p in a_at if min(b_at) < p < max(b_at)], "A wrote while B worked"
    assert a.alive(), a.log_text()[-3000:]


def records(api: kubernetes.client.ApiClient, *identities: str) -> dict[str, Any] | None:
    """The peering object's records of ``identities``, once each of them has one."""
    status = (get_json(api, PEERING) or {}).get("status") or {}
    mine = {k: v for k, v in status.items() if k in identities and v}
    return mine if len(mine) == len(identities) else None


async def test_a_standby_takes_over_from_a_killed_replica_once_its_record_expires(
    h: OperatorHarness, replica: Start
) -> None:
    """A replica killed without a word (SIGKILL, a lost node) leaves its peering record behind;
    its standby waits until the record's lifetime passes. ``--peering-lifetime`` sets it: both
    replicas write it into their records, and the standby takes over after it."""
    a = replica("replica-a", 100, peering_lifetime=15)
    create_rollout(h.api, canary("web"))
    await h.wait_status(healthy, timeout=60, what="first revision Healthy, by A")
    b = replica("replica-b", 50, peering_lifetime=15)
    both = await h.wait_for(
        lambda: records(h.api, "replica-a", "replica-b"),
        timeout=60,
        what="both replicas in the peering object",
    )
    assert {r["lifetime"] for r in both.values()} == {15}, both
    h.set_image("web:2")
    await h.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 3,
        timeout=60,
        what="paused for a person at 75%, by A",
    )
    assert writes_by(h, "replica-b") == []

    a.kill()  # no SIGTERM: A's record stays until it expires
    killed = len(h.emulator.emulator.calls)
    h.request("promote", "p1")
    done = await h.wait_status(healthy, timeout=60, what="Healthy, promoted by B")
    assert done["stableRevision"] == done["currentRevision"]
    assert writes_by(h, "replica-b", since=killed), "B took over"
    one_at_a_time(h, "replica-a", "replica-b")
    promoted_once(h)
    assert b.alive(), b.log_text()[-3000:]
