"""Real analysis behind the engine's ``VerdictSource`` port: AnalysisRuns judged by statistics.

The engine only says "start analysis NAME for these templates" and reads "what did NAME conclude".
This module turns that into AnalysisRun objects (resolved templates, rendered arguments) kept in an
:class:`AnalysisRunStore` (Kubernetes in the operator, memory in the simulator and tests), and
advances each running run by one tick per reconcile through a metric provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from analysis.api import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate

    from rollouts.api.rollout import Rollout


class SecretNotFound(LookupError):
    """A Secret (or one of its keys) an analysis provider's auth refers to does not exist.

    The message names the Secret and the key, because it becomes the run's Error message.
    """


class AnalysisRunStore(Protocol):
    """Where templates are read and AnalysisRuns kept.

    Why a port: the operator keeps runs as Kubernetes objects (``rollouts.cluster.kube_analysis``)
    so ``kubectl get analysisruns`` shows them and a restarted controller resumes from their
    status; the simulator and the unit tests keep them in memory. The analysis logic is the same.

    - ``get_template`` returns ``None`` when the template does not exist (a user error reported
      on the run, not an exception); ``cluster_scope`` selects a ClusterAnalysisTemplate.
    - ``create_run`` is idempotent: when a run of that name exists it is returned unchanged, so a
      reconcile repeated after a crash never creates a second run. The store sets the owner
      reference to the Rollout and the ``sluice.dev/rollout`` / ``sluice.dev/revision`` labels.
    - ``list_runs`` returns the runs owned by (labelled with) the Rollout, any order.
    - ``update_run_status`` writes ``run.status`` only (the status subresource) and returns the
      stored run.
    - ``resolve_secret`` returns one key of a Secret in ``namespace`` or raises
      :class:`SecretNotFound` naming the Secret and key.
    """

    def get_template(
        self, namespace: str, name: str, cluster_scope: bool = False
    ) -> AnalysisTemplate | ClusterAnalysisTemplate | None: ...

    def create_run(self, rollout: Rollout, run: AnalysisRun) -> AnalysisRun: ...

    def get_run(self, namespace: str, name: str) -> AnalysisRun | None: ...

    def list_runs(self, rollout: Rollout) -> list[AnalysisRun]: ...

    def update_run_status(self, run: AnalysisRun) -> AnalysisRun: ...

    def resolve_secret(self, namespace: str, name: str, key: str) -> str: ...
