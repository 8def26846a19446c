"""ObjectIndex: what the cache reads, kept as watch events change it."""

from __future__ import annotations

from typing import Any

from rollouts.cluster.object_index import ObjectIndex


def obj(name: str, owner: str | None = None, rv: str = "1", ns: str = "ns") -> dict[str, Any]:
    labels = {} if owner is None else {"owner": owner}
    return {"metadata": {"namespace": ns, "name": name, "labels": labels, "resourceVersion": rv}}


def by_owner(body: Any) -> tuple[str, str] | None:
    meta = body["metadata"]
    owner = meta["labels"].get("owner")
    return None if owner is None else (meta["namespace"], owner)


def test_an_object_is_held_under_its_own_key_until_deleted() -> None:
    index = ObjectIndex(lambda b: dict(b))
    index.update(obj("a", rv="1"))
    index.update(obj("a", rv="2"))
    assert [d["metadata"]["resourceVersion"] for d in index.get(("ns", "a"))] == ["2"]
    assert index.get(("other", "a")) is None and len(index) == 1
    index.update(obj("a", rv="3"), deleted=True)
    assert index.get(("ns", "a")) is None and list(index) == []


def test_objects_sharing_a_key_are_held_together_and_leave_one_by_one() -> None:
    index = ObjectIndex(lambda b: dict(b), key=by_owner)
    index.update(obj("run-1", owner="web"))
    index.update(obj("run-2", owner="web"))
    index.update(obj("run-3", owner="api"))
    assert sorted(d["metadata"]["name"] for d in index[("ns", "web")]) == ["run-1", "run-2"]
    index.update(obj("run-1", owner="web"), deleted=True)
    assert [d["metadata"]["name"] for d in index[("ns", "web")]] == ["run-2"]
    index.update(obj("run-2", owner="web"), deleted=True)
    assert ("ns", "web") not in index and len(index) == 1


def test_an_object_whose_key_changes_moves_and_one_without_a_key_leaves() -> None:
    index = ObjectIndex(lambda b: dict(b), key=by_owner)
    index.update(obj("run-1", owner="web"))
    index.update(obj("run-1", owner="api"))  # relabelled
    assert index.get(("ns", "web")) is None
    assert [d["metadata"]["name"] for d in index[("ns", "api")]] == ["run-1"]
    index.update(obj("run-1", owner=None))  # label removed: no key, not held
    assert len(index) == 0


def test_an_object_the_value_declines_is_not_held_and_one_held_before_leaves() -> None:
    index = ObjectIndex(lambda b: dict(b) if b["metadata"]["labels"] else None)
    index.update(obj("slot", owner="web"))
    assert index.get(("ns", "slot")) is not None
    index.update(obj("slot"))  # the label went: no longer a slot
    assert index.get(("ns", "slot")) is None and len(index) == 0


def test_a_reader_keeps_a_consistent_entry_while_the_index_changes() -> None:
    """Reconcile threads iterate an entry while the event loop writes: entries are replaced."""
    index = ObjectIndex(lambda b: dict(b), key=by_owner)
    index.update(obj("run-1", owner="web"))
    held = index[("ns", "web")]
    index.update(obj("run-2", owner="web"))
    index.update(obj("run-1", owner="web"), deleted=True)
    assert [d["metadata"]["name"] for d in held] == ["run-1"]
    assert [d["metadata"]["name"] for d in index[("ns", "web")]] == ["run-2"]
