"""Templates, runs and Secrets in dictionaries: the simulator's and the unit tests' store."""

from __future__ import annotations

from analysis.api import (
    LABEL_REVISION,
    LABEL_ROLLOUT,
    AnalysisRun,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
)
from analysis.store.port import RunOwner, SecretNotFound


class MemoryAnalysisStore:
    """Templates, runs and Secrets in dictionaries: the simulator's and the unit tests' store."""

    def __init__(self) -> None:
        self.templates: dict[
            tuple[str | None, str], AnalysisTemplate | ClusterAnalysisTemplate
        ] = {}
        self.runs: dict[tuple[str, str], AnalysisRun] = {}
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}

    def add_template(
        self, template: AnalysisTemplate | ClusterAnalysisTemplate, namespace: str = "default"
    ) -> None:
        """Add a template; a namespaced one lands in its own namespace (else ``namespace``)."""
        if template.kind == "ClusterAnalysisTemplate":
            self.templates[(None, template.metadata.name)] = template
        else:
            ns = template.metadata.namespace or namespace
            self.templates[(ns, template.metadata.name)] = template

    def get_template(
        self, namespace: str, name: str, cluster_scope: bool = False
    ) -> AnalysisTemplate | ClusterAnalysisTemplate | None:
        return self.templates.get((None if cluster_scope else namespace, name))

    def create_run(self, owner: RunOwner, run: AnalysisRun) -> AnalysisRun:
        key = (owner.namespace, run.metadata.name)
        if key not in self.runs:
            labels = dict(run.metadata.labels or {})
            labels.setdefault(LABEL_ROLLOUT, owner.name)
            labels.setdefault(LABEL_REVISION, run.spec.revision)
            meta = run.metadata.model_copy(update={"namespace": owner.namespace, "labels": labels})
            self.runs[key] = run.model_copy(update={"metadata": meta}, deep=True)
        return self.runs[key].model_copy(deep=True)

    def get_run(self, namespace: str, name: str) -> AnalysisRun | None:
        run = self.runs.get((namespace, name))
        return None if run is None else run.model_copy(deep=True)

    def list_runs(self, owner: RunOwner) -> list[AnalysisRun]:
        ns, name = owner.namespace, owner.name
        return [
            r.model_copy(deep=True)
            for (rns, _), r in self.runs.items()
            if rns == ns and (r.metadata.labels or {}).get(LABEL_ROLLOUT) == name
        ]

    def update_run_status(self, run: AnalysisRun) -> AnalysisRun:
        key = (run.metadata.namespace or "default", run.metadata.name)
        stored = self.runs[key]
        self.runs[key] = stored.model_copy(update={"status": run.status}, deep=True)
        return self.runs[key].model_copy(deep=True)

    def delete_run(self, namespace: str, name: str) -> None:
        self.runs.pop((namespace, name), None)

    def resolve_secret(self, namespace: str, name: str, key: str) -> str:
        data = self.secrets.get((namespace, name))
        if data is None:
            raise SecretNotFound(f"Secret {namespace}/{name} not found")
        if key not in data:
            raise SecretNotFound(f"Secret {namespace}/{name} has no key {key!r}")
        return data[key]
