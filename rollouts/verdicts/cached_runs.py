"""AnalysisRuns read from the operator's watches; writes go to the Kubernetes store unchanged.

A reconcile of an analysed Rollout lists its runs every time (``RunLifecycle.runs``); served from
the watch index, an idle Rollout's reconcile reads nothing from the API server. Every run this
process writes is kept (``remember``) until the watch delivers it, so a tick never sees a run as it
was before its own last write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from analysis.api import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, InvalidAnalysisSpec
from analysis.api import parse_run as parse_run
from analysis.store.kubernetes import KubeAnalysisStore
from analysis.store.port import RunOwner

log = logging.getLogger(__name__)

RUNS = "analysisruns"
"""The cache kind of runs by (namespace, name)."""
RUNS_OF = "analysisruns-of"
"""The cache kind of runs by (namespace, the Rollout in their ``sluice.dev/rollout`` label)."""


class RunCache(Protocol):
    """What this store needs of ``rollouts.cluster.cache.WatchCache``."""

    def watched(self, kind: str) -> bool: ...

    def get(
        self, kind: str, namespace: str, name: str, fetch: Callable[[], dict[str, Any] | None]
    ) -> dict[str, Any] | None: ...

    def list(
        self,
        kind: str,
        namespace: str,
        owner: str,
        fetch: Callable[[], list[dict[str, Any]]],
        item_kind: str | None = None,
    ) -> list[dict[str, Any]]: ...

    def remember(self, kind: str, doc: Any) -> None: ...

    def drop(self, kind: str, namespace: str, name: str) -> None: ...


class CachedRunStore:
    """``KubeAnalysisStore`` with run reads served from ``cache`` once it watches runs."""

    def __init__(self, inner: KubeAnalysisStore, cache: RunCache) -> None:
        self.inner = inner
        self.cache = cache

    def get_template(
        self, namespace: str, name: str, cluster_scope: bool = False
    ) -> AnalysisTemplate | ClusterAnalysisTemplate | None:
        return self.inner.get_template(namespace, name, cluster_scope)

    def resolve_secret(self, namespace: str, name: str, key: str) -> str:
        return self.inner.resolve_secret(namespace, name, key)

    def create_run(self, owner: RunOwner, run: AnalysisRun) -> AnalysisRun:
        return self._remember(self.inner.create_run(owner, run))

    def update_run_status(self, run: AnalysisRun) -> AnalysisRun:
        return self._remember(self.inner.update_run_status(run))

    def delete_run(self, namespace: str, name: str) -> None:
        self.cache.drop(RUNS, namespace, name)
        self.inner.delete_run(namespace, name)

    def get_run(self, namespace: str, name: str) -> AnalysisRun | None:
        if not self.cache.watched(RUNS):
            return self.inner.get_run(namespace, name)
        found: list[AnalysisRun | None] = []

        def fetch() -> dict[str, Any] | None:
            found.append(self.inner.get_run(namespace, name))
            return None if found[0] is None else found[0].wire()

        doc = self.cache.get(RUNS, namespace, name, fetch)
        if found:
            return found[0]
        return None if doc is None else self._parsed(doc)

    def list_runs(self, owner: RunOwner) -> list[AnalysisRun]:
        if not self.cache.watched(RUNS_OF):
            return self.inner.list_runs(owner)
        docs = self.cache.list(
            RUNS_OF,
            owner.namespace,
            owner.name,
            lambda: [r.wire() for r in self.inner.list_runs(owner)],
            item_kind=RUNS,
        )
        out = []
        for doc in docs:
            run = self._parsed(doc)
            if run is not None:
                out.append(run)
        return out

    def _parsed(self, doc: dict[str, Any]) -> AnalysisRun | None:
        try:
            return parse_run(doc)
        except InvalidAnalysisSpec as e:
            name = (doc.get("metadata") or {}).get("name")
            log.warning("AnalysisRun %s skipped: %s", name, e)
            return None

    def _remember(self, run: AnalysisRun) -> AnalysisRun:
        self.cache.remember(RUNS, run.wire())
        return run
