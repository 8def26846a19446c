"""The AnalysisRun store port: where templates are read and runs kept.

Its adapters sit beside it (``memory``, ``kubernetes``), as ``rollouts.cluster`` and
``rollouts.routing`` keep theirs. ``analysis`` never imports ``rollouts``, so a run's owner is a
:class:`RunOwner`, not a Rollout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from analysis.api import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate


@dataclass(frozen=True)
class RunOwner:
    """The Rollout a run belongs to: its runs are labelled with ``name`` and owned by ``uid``."""

    namespace: str
    name: str
    uid: str = ""


class SecretNotFound(LookupError):
    """A Secret (or one of its keys) an analysis provider's auth refers to does not exist.

    The message names the Secret and the key, because it becomes the run's Error message.
    """


class AnalysisRunStore(Protocol):
    """Where templates are read and AnalysisRuns kept.

    Why a port: the operator keeps runs as Kubernetes objects (``analysis.store.kubernetes``)
    so ``kubectl get analysisruns`` shows them and a restarted controller resumes from their
    status; the simulator and the unit tests keep them in memory. The analysis logic is the same.

    - ``get_template`` returns ``None`` when the template does not exist (a user error reported
      on the run, not an exception); ``cluster_scope`` selects a ClusterAnalysisTemplate.
    - ``create_run`` is idempotent: when a run of that name exists it is returned unchanged, so a
      reconcile repeated after a crash never creates a second run. The store sets the owner
      reference to the owner (a Rollout) and the ``sluice.dev/rollout`` / ``sluice.dev/revision`` labels.
    - ``list_runs`` returns the runs owned by (labelled with) the owner, any order.
    - ``update_run_status`` writes ``run.status`` only (the status subresource) and returns the
      stored run.
    - ``delete_run`` deletes a run; one already gone is not an error (two replicas, or a
      retried reconcile, may prune the same run).
    - ``resolve_secret`` returns one key of a Secret in ``namespace`` or raises
      :class:`SecretNotFound` naming the Secret and key.
    """

    def get_template(
        self, namespace: str, name: str, cluster_scope: bool = False
    ) -> AnalysisTemplate | ClusterAnalysisTemplate | None: ...

    def create_run(self, owner: RunOwner, run: AnalysisRun) -> AnalysisRun: ...

    def get_run(self, namespace: str, name: str) -> AnalysisRun | None: ...

    def list_runs(self, owner: RunOwner) -> list[AnalysisRun]: ...

    def update_run_status(self, run: AnalysisRun) -> AnalysisRun: ...

    def delete_run(self, namespace: str, name: str) -> None: ...

    def resolve_secret(self, namespace: str, name: str, key: str) -> str: ...
