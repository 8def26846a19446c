"""A reconcile's fingerprint must not count as seen what it never acted on.

A status write's answer carries the whole Rollout as the server now holds it, including a spec
someone changed after the reconcile read it. Recorded as seen, that new spec made the watch event
that brings it look like the echo of the reconcile's own write: the event was skipped and the
new revision never rolled out (seen in the Prometheus-fault suite, one Rollout in 27)."""

from __future__ import annotations

from typing import Any

from rollouts.cluster.cache import WatchCache


def rollout(generation: int, rv: int, phase: str) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "web",
            "generation": generation,
            "resourceVersion": str(rv),
        },
        "status": {"phase": phase},
    }


def test_a_write_answer_with_a_newer_spec_leaves_the_spec_unseen() -> None:
    index: dict[Any, Any] = {("ns", "web"): [rollout(1, 10, "Healthy")]}
    cache = WatchCache()
    cache.attach("rollouts", index)
    with cache.recording() as seen:
        cache.get("rollouts", "ns", "web", lambda: None)
        # the status write lands after someone bumped the spec (generation 2)
        cache.remember("rollouts", rollout(2, 12, "Progressing"))
    # the watch then delivers the object as written: its spec is news to the reconcile
    index[("ns", "web")] = [rollout(2, 12, "Progressing")]
    assert not cache.unchanged(seen)


def test_the_echo_of_its_own_status_write_is_unchanged() -> None:
    index: dict[Any, Any] = {("ns", "web"): [rollout(1, 10, "Healthy")]}
    cache = WatchCache()
    cache.attach("rollouts", index)
    with cache.recording() as seen:
        cache.get("rollouts", "ns", "web", lambda: None)
        cache.remember("rollouts", rollout(1, 11, "Progressing"))
    index[("ns", "web")] = [rollout(1, 11, "Progressing")]
    assert cache.unchanged(seen)
