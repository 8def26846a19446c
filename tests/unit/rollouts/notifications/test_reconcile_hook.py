"""The reconcile hands notifications over only once the status recording them is written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.api.rollout import Rollout, RolloutStatus
from rollouts.api.validation import parse_rollout
from rollouts.cluster.memory import MemoryCluster
from rollouts.notifications.port import RecordingNotifier
from rollouts.reconcile import Ports, cycle
from rollouts.routing.memory import MemoryRouter
from rollouts.verdicts.scripted import ScriptedVerdicts
from tests.support.rollouts import rollout_doc

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


class BrokenStatus(MemoryCluster):
    def write_status(self, rollout: Rollout, status: RolloutStatus) -> None:
        raise RuntimeError("the API server is gone")


def ports(cluster: MemoryCluster, notifier: RecordingNotifier) -> Ports:
    verdicts = ScriptedVerdicts(lambda: 0.0, {"*": "Successful"}, 60.0)
    return Ports(cluster, MemoryRouter(), verdicts, notifier=notifier)


def first_revision() -> Rollout:
    return parse_rollout(rollout_doc(steps=[{"setWeight": 50}]))


def test_a_failed_status_write_hands_over_nothing() -> None:
    notifier = RecordingNotifier()
    cluster = BrokenStatus(lambda: 0.0, ready_delay=0)
    with pytest.raises(RuntimeError):
        cycle(first_revision(), ports(cluster, notifier), NOW)
    assert notifier.notices == []


def test_the_written_status_records_what_was_handed_over() -> None:
    notifier = RecordingNotifier()
    cluster = MemoryCluster(lambda: 0.0, ready_delay=0)
    rollout = first_revision()
    written: list[Any] = []
    original = cluster.write_status

    def spy(r: Rollout, status: RolloutStatus) -> None:
        written.append(status)
        original(r, status)

    cluster.write_status = spy  # type: ignore[method-assign]
    plan = cycle(rollout, ports(cluster, notifier), NOW)
    for _ in range(20):  # until the first revision settles
        if plan.status.phase == "Healthy":
            break
        rollout = rollout.model_copy(update={"status": plan.status})
        plan = cycle(rollout, ports(cluster, notifier), NOW)
    assert [n.event for n in notifier.notices] == ["Healthy"]
    last = written[-1]
    assert last.notifications is not None
    assert [(r.event, r.at) for r in last.notifications.sent] == [("Healthy", NOW)]
    assert plan.status == last  # the cycle returns the status it wrote


def test_without_a_notifier_status_records_nothing() -> None:
    cluster = MemoryCluster(lambda: 0.0, ready_delay=0)
    verdicts = ScriptedVerdicts(lambda: 0.0, {"*": "Successful"}, 60.0)
    rollout = first_revision()
    plan = cycle(rollout, Ports(cluster, MemoryRouter(), verdicts), NOW)
    for _ in range(20):
        rollout = rollout.model_copy(update={"status": plan.status})
        plan = cycle(rollout, Ports(cluster, MemoryRouter(), verdicts), NOW)
    assert plan.status.phase == "Healthy" and plan.status.notifications is None
