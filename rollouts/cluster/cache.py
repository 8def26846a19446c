"""Reads served from watches: the objects a reconcile observes, held in memory per kind.

The operator keeps one index per kind it observes (``ObjectIndex``, fed by kopf's watches: the
Rollouts, their slot Deployments, Services, router objects and AnalysisRuns); a reconcile reads
them here instead of asking the API server, so a reconcile that finds nothing changed costs no
request.

Three rules keep it correct:

- **Unknown is not absent.** A kind whose index is not attached (a Controller driven without the
  operator's watches, a router CRD the cluster does not serve) falls back to a GET; absence in an
  attached index means the object does not exist only for kinds marked authoritative.
- **Our writes are newer than the watch.** A write returns the object as stored; it is kept here
  (``remember``) until the watch catches up (a ``resourceVersion`` at least as new), so the next
  reconcile never acts on the copy from before its own write.
- **A reconcile records what it read.** ``recording()`` collects the ``resourceVersion`` of every
  object read or written in one reconcile; the operator compares it with the cache when an event
  arrives and skips a reconcile whose inputs are all unchanged (its own writes come back as events).
"""

from __future__ import annotations

import builtins
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

Doc = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace, name (for "runs-of": the owning Rollout's name)
Fingerprint = dict[Key, Any]
FRESH_SECONDS = 300.0
"""A safety net only: a written copy goes when the watch delivers one as new, or the object's
deletion; one still here after this long (an object deleted while its watch was down) is dropped.
It must outlast any watch lag: a copy dropped early lets a reconcile act on a stale status."""


def resource_version(doc: Mapping[str, Any] | None) -> int:
    """The object's ``resourceVersion`` as a number (0 when absent or not numeric).

    Kubernetes calls it opaque, but every API server hands out etcd revisions, which grow; an
    object from a write compares with one from the watch by it."""
    if doc is None:
        return 0
    rv = str((doc.get("metadata") or {}).get("resourceVersion") or "")
    return int(rv) if rv.isdigit() else 0


def _rollout_version(doc: Mapping[str, Any]) -> Any:
    """What of a Rollout a reconcile depends on: spec (generation), status, the request
    annotation and deletion; not kopf's own annotations and finalizer, whose writes would
    otherwise each cost a reconcile."""
    meta = doc.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return (
        meta.get("generation"),
        annotations.get("sluice.dev/request"),
        meta.get("deletionTimestamp"),
        repr(doc.get("status")),
    )


VERSIONS: dict[str, Callable[[Mapping[str, Any]], Any]] = {"rollouts": _rollout_version}
"""Kinds whose fingerprint is not their resourceVersion."""


def _rollout_inputs_from_read(read: Any, written: Any) -> Any:
    """A Rollout's fingerprint after its status write: spec, request and deletion as read (the
    reconcile acted on those), status as written (its own)."""
    return (*read[:3], written[3])


INPUTS_FROM_READ: dict[str, Callable[[Any, Any], Any]] = {"rollouts": _rollout_inputs_from_read}
"""Kinds whose write answers must not stand for what the reconcile read of their inputs."""


def _version(kind: str, doc: Mapping[str, Any] | None) -> Any:
    if doc is None:
        return None
    fn = VERSIONS.get(kind)
    return resource_version(doc) if fn is None else fn(doc)


def _first(values: Any) -> Doc | None:
    for value in values or ():
        if isinstance(value, dict):
            return value
    return None


class WatchCache:
    """Objects by kind, namespace and name, from the operator's indexes plus its own writes."""

    def __init__(self) -> None:
        self._indexes: dict[str, Mapping[Any, Any]] = {}
        self._authoritative: set[str] = set()
        self._fresher: dict[Key, Doc] = {}
        self._written: dict[Key, float] = {}
        self._members: dict[Key, set[str]] = {}
        """(list kind, namespace, owner) -> names a bypassing LIST found: the index may not hold
        them yet (another replica created them while this one was paused), so a list from the
        index adds their kept copies until the watch delivers them."""
        self._writes = 0
        self._guard = threading.Lock()
        self._local = threading.local()

    # ------------------------------------------------------------------------- wiring
    def attach(self, kind: str, index: Mapping[Any, Any], *, authoritative: bool = True) -> None:
        """Serve ``kind`` from ``index`` (a mapping of (namespace, name) to the object's values).

        ``authoritative``: an object missing from the index does not exist (the kind is always
        served and watched); otherwise a miss falls back to the API."""
        with self._guard:
            self._indexes[kind] = index
            if authoritative:
                self._authoritative.add(kind)
            else:
                self._authoritative.discard(kind)

    def watched(self, kind: str) -> bool:
        with self._guard:
            return kind in self._indexes

    # ------------------------------------------------------------------------- reads
    @contextlib.contextmanager
    def bypassed(self) -> Iterator[None]:
        """Reads inside (this thread only) ask the API server, and what they get is kept as newer
        than the index until the watch catches up: for a reconcile that must not trust the watches
        (after a peering pause, during which another replica worked and the watches were stopped).
        """
        outer = getattr(self._local, "bypass", False)
        self._local.bypass = True
        try:
            yield
        finally:
            self._local.bypass = outer

    def _bypassing(self) -> bool:
        return bool(getattr(self._local, "bypass", False))

    def _indexed(self, kind: str, key: Any) -> tuple[bool, Any]:
        if self._bypassing():
            return False, None
        with self._guard:
            index = self._indexes.get(kind)
            authoritative = kind in self._authoritative
        if index is None:
            return False, None
        try:
            values = index.get(key)
        except (KeyError, TypeError):
            values = None
        return (values is not None or authoritative), values

    def get(
        self, kind: str, namespace: str, name: str, fetch: Callable[[], Doc | None]
    ) -> Doc | None:
        """The object, from the index (or a write newer than it), else from ``fetch()`` (a GET)."""
        key = (kind, namespace, name)
        if self._bypassing():
            doc = fetch()
            self._keep(kind, doc)
            self._record(key, _version(kind, doc))
            return doc
        known, values = self._indexed(kind, (namespace, name))
        doc = _first(values) if known else None
        with self._guard:
            mine = self._fresher.get(key)
            if mine is not None:
                if doc is not None and resource_version(doc) >= resource_version(mine):
                    del self._fresher[key]  # the watch caught up
                else:
                    doc, known = mine, True
        if not known:
            doc = fetch()
        self._record(key, _version(kind, doc))
        return doc

    def peek(self, kind: str, namespace: str, name: str) -> tuple[bool, Doc | None]:
        """(known, object) from the index and this process's writes, recording nothing and never
        asking the API: ``known`` is False when only a GET could tell (the kind is not served, or
        not authoritatively and the object is missing).

        For a write that needs only to know whether the object exists (create or patch): it is not
        an input the reconcile decided from, so it must not enter the fingerprint."""
        known, values = self._indexed(kind, (namespace, name))
        doc = _first(values) if known else None
        with self._guard:
            mine = self._fresher.get((kind, namespace, name))
        if mine is not None and (doc is None or resource_version(mine) > resource_version(doc)):
            return True, mine
        return known, doc

    def list(
        self,
        kind: str,
        namespace: str,
        owner: str,
        fetch: Callable[[], list[Doc]],
        item_kind: str | None = None,
    ) -> list[Doc]:
        """Objects indexed under (namespace, owner) (the runs of a Rollout), else ``fetch()``;
        each one overlaid with a newer copy this process wrote (as ``item_kind``)."""
        item = item_kind or kind
        known, values = self._indexed(kind, (namespace, owner))
        if not known:
            docs = fetch()
            if self._bypassing():
                names = set()
                for doc in docs:
                    if self._keep(item, doc) is not None:
                        names.add(str((doc.get("metadata") or {}).get("name") or ""))
                with self._guard:
                    if kind in self._indexes:
                        self._members[(kind, namespace, owner)] = names
        else:
            docs = self._overlaid(kind, item, namespace, owner, values)
        versions = tuple(
            sorted(((d.get("metadata") or {}).get("name", ""), resource_version(d)) for d in docs)
        )
        self._record((f"list:{kind}:{item}", namespace, owner), versions)
        return docs

    def _overlaid(
        self, kind: str, item: str, namespace: str, owner: str, values: Any
    ) -> builtins.list[Doc]:
        """The indexed list, each object replaced by a newer copy this process holds, plus the
        kept copies a bypassing LIST found that the index does not hold yet."""
        docs = [v for v in values or () if isinstance(v, dict)]
        with self._guard:
            out = []
            for doc in docs:
                name = (doc.get("metadata") or {}).get("name", "")
                mine = self._fresher.get((item, namespace, name))
                if mine is not None and resource_version(mine) > resource_version(doc):
                    doc = mine
                out.append(doc)
            listed = self._members.get((kind, namespace, owner))
            if listed:
                indexed = {(d.get("metadata") or {}).get("name", "") for d in docs}
                for name in sorted(listed - indexed):
                    mine = self._fresher.get((item, namespace, name))
                    if mine is None:  # the watch caught up (then it is indexed), or it expired
                        listed.discard(name)
                    else:
                        out.append(mine)
                listed -= indexed
                if not listed:
                    del self._members[(kind, namespace, owner)]
        return out

    # ------------------------------------------------------------------------- writes
    def remember(self, kind: str, doc: Any) -> None:
        """A write's answer: newer than the index until the watch delivers it."""
        key = self._keep(kind, doc)
        if key is None:
            return
        with self._guard:
            self._writes += 1
            settle = self._writes % 256 == 0
        if settle:
            self.settle()
        version = _version(kind, doc)
        if kind in INPUTS_FROM_READ:
            # a write's answer also carries what others changed since this reconcile read the
            # object (a new spec, a new request): recording those as seen would skip the event
            # that brings them, and the change would never be acted on. Keep what was read.
            read = self._recorded(key)
            if read is not None:
                version = INPUTS_FROM_READ[kind](read, version)
        self._record(key, version)

    def _keep(self, kind: str, doc: Any) -> Key | None:
        """Keep ``doc`` as newer than the index until the watch delivers it as new (a write's
        answer, or a read that bypassed the index), never over a newer copy; None when nothing
        watches the kind (nothing would ever drop the copy) or ``doc`` is no object."""
        if not isinstance(doc, dict):
            return None
        meta = doc.get("metadata") or {}
        key = (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        with self._guard:
            if kind not in self._indexes:
                return None
            have = self._fresher.get(key)
            if have is None or resource_version(doc) >= resource_version(have):
                self._fresher[key] = doc
                self._written[key] = time.monotonic()
        return key

    def _recorded(self, key: Key) -> Any:
        reads = getattr(self._local, "reads", None)
        return None if reads is None else reads.get(key)

    def drop(self, kind: str, namespace: str, name: str) -> None:
        """This process deletes the object: its own copy must not outlive it."""
        with self._guard:
            self._fresher.pop((kind, namespace, name), None)

    def forget(self, namespace: str, names: Iterable[str] = ()) -> None:
        """Drop this process's copies of objects in ``namespace`` named ``names`` (any kind)."""
        wanted = set(names)
        with self._guard:
            for key in [k for k in self._fresher if k[1] == namespace and k[2] in wanted]:
                del self._fresher[key]
            for key in [k for k in self._members if k[1] == namespace and k[2] in wanted]:
                del self._members[key]

    def fresher_count(self) -> int:
        self.settle()
        with self._guard:
            return len(self._fresher)

    def settle(self) -> None:
        """Drop written copies the watch has caught up with (or that are too old)."""
        with self._guard:
            self._expire()
            pending = list(self._fresher.items())
        caught = []
        for key, mine in pending:
            kind, namespace, name = key
            known, values = self._indexed(kind, (namespace, name))
            doc = _first(values) if known else None
            if doc is not None and resource_version(doc) >= resource_version(mine):
                caught.append((key, mine))
        with self._guard:
            for key, mine in caught:
                if self._fresher.get(key) is mine:
                    del self._fresher[key]
                    self._written.pop(key, None)

    def _expire(self) -> None:
        """Drop written copies older than ``FRESH_SECONDS`` (the caller holds the guard)."""
        old = time.monotonic() - FRESH_SECONDS
        for key in [k for k, t in self._written.items() if t < old]:
            self._fresher.pop(key, None)
            del self._written[key]

    # ------------------------------------------------------------------ fingerprints
    @contextlib.contextmanager
    def recording(self) -> Iterator[Fingerprint]:
        """Collect what the code inside reads and writes (this thread only)."""
        reads: Fingerprint = {}
        outer = getattr(self._local, "reads", None)
        self._local.reads = reads
        try:
            yield reads
        finally:
            self._local.reads = outer

    def _record(self, key: Key, version: Any) -> None:
        reads = getattr(self._local, "reads", None)
        if reads is not None:
            reads[key] = version

    def unchanged(self, seen: Fingerprint) -> bool:
        """Whether every object in ``seen`` is still as it was (by resourceVersion), judged from
        the cache alone: True only when every kind in it is served from an index."""
        for (kind, namespace, name), version in seen.items():
            if kind.startswith("list:"):
                real, item = kind.split(":")[1:]
                known, values = self._indexed(real, (namespace, name))
                if not known:
                    return False
                docs = self._overlaid(real, item, namespace, name, values)
                now = [
                    ((d.get("metadata") or {}).get("name", ""), resource_version(d)) for d in docs
                ]
                if tuple(sorted(now)) != version:
                    return False
                continue
            known, values = self._indexed(kind, (namespace, name))
            if not known:
                return False
            doc = _first(values)
            with self._guard:
                mine = self._fresher.get((kind, namespace, name))
            if mine is not None and resource_version(mine) > resource_version(doc):
                doc = mine
            if _version(kind, doc) != version:
                return False
        return True
