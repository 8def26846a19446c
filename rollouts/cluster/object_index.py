"""The watched objects of one kind, by a key, in the shape ``WatchCache`` reads (key -> values).

The event loop writes it, one watch event at a time; the reconcile threads read it. Each entry
is a tuple replaced whole, never changed in place, so a reader iterating one never sees it half
updated (a dict that changed size under a reader's loop would raise).

The key is the object's own (namespace, name), or another one (an AnalysisRun under its Rollout's
name), several objects then sharing it; an object whose key or value is None is not held, like
kopf's index handlers returning None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

Doc = dict[str, Any]
Key = tuple[str, str]


def own_key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class ObjectIndex(Mapping[Key, tuple[Doc, ...]]):
    """Objects kept as ``value(body)`` under ``key(body)``; what a watch event changes."""

    def __init__(
        self,
        value: Callable[[Mapping[str, Any]], Doc | None],
        key: Callable[[Mapping[str, Any]], Key | None] = own_key,
    ) -> None:
        self._value = value
        self._key = key
        self._entries: dict[Key, tuple[Doc, ...]] = {}
        self._members: dict[Key, dict[Key, Doc]] = {}
        self._held: dict[Key, Key] = {}  # object -> the key it is held under

    def update(self, body: Mapping[str, Any], deleted: bool = False) -> None:
        """Hold the object as this event shows it (or no more: deleted, or no key or value)."""
        obj = own_key(body)
        key = None if deleted else self._key(body)
        value = None if key is None else self._value(body)
        old = self._held.pop(obj, None)
        if old is not None and (old != key or value is None):
            members = self._members.get(old, {})
            members.pop(obj, None)
            self._publish(old, members)
        if key is not None and value is not None:
            members = self._members.setdefault(key, {})
            members[obj] = value
            self._held[obj] = key
            self._publish(key, members)

    def _publish(self, key: Key, members: dict[Key, Doc]) -> None:
        if members:
            self._entries[key] = tuple(members.values())
        else:
            self._entries.pop(key, None)
            self._members.pop(key, None)

    # -------------------------------------------------------------------- Mapping
    def get(self, key: Key, default: Any = None) -> Any:
        return self._entries.get(key, default)

    def __getitem__(self, key: Key) -> tuple[Doc, ...]:
        return self._entries[key]

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
