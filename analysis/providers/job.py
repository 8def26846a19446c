"""The job metric provider: a Kubernetes Job per measurement, 1 when it succeeds, 0 when it fails.

Test suites, load tests and conformance runs are programs, not endpoints (Argo Rollouts' ``job``
metric). One Job is created per measurement window from the template's ``provider.job.spec``,
owned by the AnalysisRun (garbage collection removes it with the run) and labelled with the
rollout, the run and the metric. Until it finishes the measurement is :class:`Pending`: the run
loop records nothing and asks again at the next tick, so a long suite never counts as an Error.

- the Job's ``Complete`` condition (or ``succeeded`` pods) -> 1.0;
- its ``Failed`` condition (``BackoffLimitExceeded``, ``DeadlineExceeded`` when
  ``activeDeadlineSeconds`` passed) -> 0.0, judged by the threshold (``min: 1``) as a failure;
- the API refusing the Job (a bad spec, no RBAC) -> ProviderError, an Error measurement.

The last lines of the Job's pod logs go into the measurement's message, best effort: when they
cannot be read (the pod is gone, no permission) the message says so instead.

The name is deterministic (run, metric, window), so a restarted controller finds the Job it
created instead of starting a second one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from analysis.api import JobCheck
from analysis.providers.port import Arm, Measured, Pending, ProviderError, Queries, Value

__all__ = [
    "LABEL_METRIC",
    "LABEL_RUN",
    "LOG_LINES",
    "JobProvider",
    "Jobs",
    "JobsUnavailable",
    "job_name",
    "outcome",
]

LABEL_RUN = "sluice.dev/analysisrun"
LABEL_METRIC = "sluice.dev/metric"
LOG_LINES = 20
"""Last lines of the Job's pod logs kept in the measurement message."""


class JobsUnavailable(Exception):
    """The Jobs API refused (a bad Job spec, no permission); the message says which."""


class Jobs(Protocol):
    """Where Jobs are created and read (Kubernetes in the controller; memory in tests).

    ``create_job`` is idempotent (an existing Job of that name is kept); ``get_job`` returns the
    Job as a plain dict or None; ``delete_jobs`` deletes every Job labelled with the run (pods
    too); ``log_tail`` returns the last lines of a Job's pod logs or raises LookupError saying
    why they cannot be read."""

    def create_job(self, namespace: str, job: Mapping[str, Any]) -> None: ...

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def delete_jobs(self, namespace: str, run: str) -> None: ...

    def log_tail(self, namespace: str, job: str, lines: int) -> str: ...


def job_name(run: str, metric: str, window_end: float) -> str:
    """``<run>-<metric>-<hash>`` cut to 63 characters: unique per run, metric and window."""
    digest = hashlib.sha256(f"{run}/{metric}/{window_end:.3f}".encode()).hexdigest()[:8]
    return f"{run}-{metric}"[:54].rstrip("-") + f"-{digest}"


def outcome(job: Mapping[str, Any]) -> tuple[bool, str] | None:
    """(succeeded, why) once the Job finished, else None."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "SuccessCriteriaMet"):
            return True, "succeeded"
        if condition.get("type") in ("Failed", "FailureTarget"):
            reason = condition.get("reason") or "Failed"
            message = condition.get("message") or ""
            return False, f"failed ({reason}{': ' + message if message else ''})"
    if (status.get("succeeded") or 0) >= 1:
        return True, "succeeded"
    return None


class JobProvider:
    """:class:`~analysis.providers.port.MetricProvider` running one metric's Jobs."""

    def __init__(
        self,
        check: JobCheck,
        *,
        namespace: str,
        run: str,
        run_uid: str,
        metric: str,
        labels: Mapping[str, str],
        jobs: Jobs,
    ) -> None:
        self.check, self.namespace, self.run, self.run_uid = check, namespace, run, run_uid
        self.metric, self.labels, self.jobs = metric, dict(labels), jobs

    def manifest(self, name: str) -> dict[str, Any]:
        meta = self.check.metadata
        labels = {**((meta.labels if meta else None) or {}), **self.labels}
        labels |= {LABEL_RUN: self.run, LABEL_METRIC: self.metric}
        metadata: dict[str, Any] = {"name": name, "namespace": self.namespace, "labels": labels}
        if meta is not None and meta.annotations:
            metadata["annotations"] = dict(meta.annotations)
        if self.run_uid:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": "sluice.dev/v1alpha1",
                    "kind": "AnalysisRun",
                    "name": self.run,
                    "uid": self.run_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata,
            "spec": self.check.spec,
        }

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        name = job_name(self.run, self.metric, end)
        try:
            job = self.jobs.get_job(self.namespace, name)
            if job is None:
                self.jobs.create_job(self.namespace, self.manifest(name))
                raise Pending(f"Job {self.namespace}/{name} created")
        except JobsUnavailable as e:
            raise ProviderError(f"Job {self.namespace}/{name}: {e}") from None
        done = outcome(job)
        if done is None:
            raise Pending(f"Job {self.namespace}/{name} running")
        succeeded, why = done
        try:
            tail = self.jobs.log_tail(self.namespace, name, LOG_LINES).rstrip()
            logs = f"last log lines:\n{tail}" if tail else "no log lines"
        except LookupError as e:
            logs = f"logs unavailable: {e}"
        return Value(1.0 if succeeded else 0.0, note=f"Job {name} {why}; {logs}")
