"""``WatchCache.peek``: whether an object exists, for a write that must choose between create and
patch, answered from the watch and this process's writes without a GET and without entering the
reconcile's fingerprint (the object is not an input the reconcile decided from)."""

from __future__ import annotations

from typing import Any

from rollouts.cluster.cache import WatchCache


def deployment(name: str, rv: int) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": str(rv)}}


def test_an_authoritative_index_answers_both_ways() -> None:
    cache = WatchCache()
    cache.attach("deployments", {("ns", "web-a"): [deployment("web-a", 3)]})
    assert cache.peek("deployments", "ns", "web-a") == (True, deployment("web-a", 3))
    assert cache.peek("deployments", "ns", "web-b") == (True, None)


def test_an_unwatched_kind_or_a_miss_in_a_partial_index_is_unknown() -> None:
    cache = WatchCache()
    cache.attach("virtualservices", {}, authoritative=False)
    assert cache.peek("deployments", "ns", "web-a") == (False, None)
    assert cache.peek("virtualservices", "ns", "web") == (False, None)


def test_its_own_newer_write_wins_over_the_index() -> None:
    index: dict[Any, Any] = {}
    cache = WatchCache()
    cache.attach("deployments", index)
    cache.remember("deployments", deployment("web-a", 5))  # created; the watch has not told yet
    assert cache.peek("deployments", "ns", "web-a") == (True, deployment("web-a", 5))
    index[("ns", "web-a")] = [deployment("web-a", 4)]  # an older copy arrives first
    assert cache.peek("deployments", "ns", "web-a") == (True, deployment("web-a", 5))


def test_peeking_records_nothing() -> None:
    cache = WatchCache()
    cache.attach("deployments", {("ns", "web-a"): [deployment("web-a", 3)]})
    with cache.recording() as seen:
        cache.peek("deployments", "ns", "web-a")
        cache.peek("deployments", "ns", "web-b")
    assert seen == {}
