"""``WatchCache.bypassed``: a reconcile that must not trust the watches (the first after a peering
pause) reads from the API, and what it reads stays newer than the index until the watch catches
up, so the reconciles right after it do not fall back to the copy from before the pause."""

from __future__ import annotations

import threading
from typing import Any

from rollouts.cluster.cache import WatchCache


def obj(name: str, rv: int, owner: str = "web") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": name,
            "resourceVersion": str(rv),
            "labels": {"sluice.dev/rollout": owner},
        }
    }


def test_reads_inside_ask_the_api_and_keep_the_answer_over_the_older_index() -> None:
    cache = WatchCache()
    index = {("ns", "web-b"): [obj("web-b", 3)]}
    cache.attach("deployments", index)
    fetched: list[str] = []

    def fetch() -> dict[str, Any]:
        fetched.append("web-b")
        return obj("web-b", 7)

    assert cache.get("deployments", "ns", "web-b", fetch) == obj("web-b", 3)
    assert fetched == []
    with cache.recording() as reads, cache.bypassed():
        assert cache.get("deployments", "ns", "web-b", fetch) == obj("web-b", 7)
    assert fetched == ["web-b"]
    assert reads == {("deployments", "ns", "web-b"): 7}
    # outside: served without a request, the API's answer over the index's older copy
    assert cache.get("deployments", "ns", "web-b", fetch) == obj("web-b", 7)
    assert cache.peek("deployments", "ns", "web-b") == (True, obj("web-b", 7))
    assert fetched == ["web-b"]
    # the watch catches up: the index serves again and the kept copy goes
    index[("ns", "web-b")] = [obj("web-b", 7)]
    assert cache.fresher_count() == 0


def test_a_list_inside_asks_the_api_and_keeps_each_item() -> None:
    cache = WatchCache()
    cache.attach("runs", {("ns", "web-1"): [obj("web-1", 2)]})
    cache.attach("runs-of", {("ns", "web"): [obj("web-1", 2)]})
    listed = [obj("web-1", 5), obj("web-2", 6)]  # one moved on, one created meanwhile
    with cache.bypassed():
        assert cache.list("runs-of", "ns", "web", lambda: listed, item_kind="runs") == listed
    assert cache.get("runs", "ns", "web-1", lambda: None) == obj("web-1", 5)
    assert cache.get("runs", "ns", "web-2", lambda: None) == obj("web-2", 6)


def test_a_list_after_it_keeps_what_the_index_does_not_hold_yet() -> None:
    """A run another replica created during the pause: the LIST found it, the watch has not
    delivered it. The reconciles after the cold one list from the index, and must see it too
    (else the Rollout looks as if its step had no run), until the watch brings it."""
    cache = WatchCache()
    runs: dict[Any, Any] = {("ns", "web-1"): [obj("web-1", 2)]}
    runs_of: dict[Any, Any] = {("ns", "web"): [obj("web-1", 2)]}
    cache.attach("runs", runs)
    cache.attach("runs-of", runs_of)
    listed = [obj("web-1", 2), obj("web-2", 6)]
    with cache.bypassed():
        cache.list("runs-of", "ns", "web", lambda: listed, item_kind="runs")

    def asked() -> list[dict[str, Any]]:
        raise AssertionError("served from the index and the kept copies, without a request")

    with cache.recording() as reads:
        assert cache.list("runs-of", "ns", "web", asked, item_kind="runs") == listed
    assert cache.unchanged(reads)
    # another Rollout's list is not touched
    assert cache.list("runs-of", "ns", "shop", asked, item_kind="runs") == []
    # the watch delivers it: served from the index alone, the kept copy settles
    runs[("ns", "web-2")] = [obj("web-2", 6)]
    runs_of[("ns", "web")] = [obj("web-1", 2), obj("web-2", 6)]
    assert cache.unchanged(reads)
    assert cache.fresher_count() == 0
    assert cache.list("runs-of", "ns", "web", asked, item_kind="runs") == listed
    # deleted later (the watch drops it): it does not come back
    runs_of[("ns", "web")] = [obj("web-1", 2)]
    assert cache.list("runs-of", "ns", "web", asked, item_kind="runs") == [obj("web-1", 2)]


def test_a_kept_run_this_process_deletes_leaves_the_list() -> None:
    cache = WatchCache()
    cache.attach("runs", {})
    cache.attach("runs-of", {})
    with cache.bypassed():
        cache.list("runs-of", "ns", "web", lambda: [obj("web-2", 6)], item_kind="runs")
    assert cache.list("runs-of", "ns", "web", list, item_kind="runs") == [obj("web-2", 6)]
    cache.drop("runs", "ns", "web-2")
    assert cache.list("runs-of", "ns", "web", list, item_kind="runs") == []
    with cache.bypassed():
        cache.list("runs-of", "ns", "web", lambda: [obj("web-2", 6)], item_kind="runs")
    cache.forget("ns", ["web"])  # the Rollout is gone: nothing kept for its list
    assert cache.list("runs-of", "ns", "web", list, item_kind="runs") == []


def test_its_own_newer_write_is_not_replaced_by_an_older_answer() -> None:
    cache = WatchCache()
    cache.attach("deployments", {})
    cache.remember("deployments", obj("web-b", 9))
    with cache.bypassed():
        cache.get("deployments", "ns", "web-b", lambda: obj("web-b", 8))
    assert cache.peek("deployments", "ns", "web-b") == (True, obj("web-b", 9))


def test_only_the_thread_inside_bypasses() -> None:
    cache = WatchCache()
    cache.attach("deployments", {("ns", "web-b"): [obj("web-b", 3)]})
    inside, outside = threading.Event(), threading.Event()
    seen: list[Any] = []

    def other() -> None:
        inside.wait(5)
        seen.append(cache.get("deployments", "ns", "web-b", lambda: obj("web-b", 99)))
        outside.set()

    t = threading.Thread(target=other)
    t.start()
    with cache.bypassed():
        inside.set()
        assert outside.wait(5)
    t.join(5)
    assert seen == [obj("web-b", 3)]
