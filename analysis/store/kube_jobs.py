"""Jobs of ``provider.job`` metrics over the Kubernetes API (``analysis.providers.job.Jobs``).

Beside the AnalysisRun store because it is the same kind of adapter: the controller's side of a
port the analysis logic defines. Label selectors are sent but the result is filtered here too, so
a server that ignores them (kmock's emulator) never makes Sluice delete or read someone else's
Job. Deletion propagates in the background, so the Job's pods go with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kubernetes

from analysis.providers.job import LABEL_RUN, JobsUnavailable


class KubeJobs:
    """Creates, reads and deletes check Jobs, and tails their pods' logs."""

    def __init__(self, api: kubernetes.client.ApiClient, *, timeout: float = 10.0) -> None:
        self.api = api
        self.batch = kubernetes.client.BatchV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.timeout = timeout

    def _plain(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return out

    def create_job(self, namespace: str, job: Mapping[str, Any]) -> None:
        try:
            body: Any = dict(job)  # the client serialises a plain dict as is
            self.batch.create_namespaced_job(namespace, body, _request_timeout=self.timeout)
        except kubernetes.client.ApiException as e:
            if e.status == 409:
                return  # created by an earlier tick whose status write failed: keep it
            if e.status in (400, 403, 404, 422):
                raise JobsUnavailable(f"HTTP {e.status}: {e.reason}: {str(e.body)[:300]}") from None
            raise

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._plain(
                self.batch.read_namespaced_job(name, namespace, _request_timeout=self.timeout)
            )
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return None
            if e.status == 403:
                raise JobsUnavailable(f"HTTP 403: may not read Jobs in {namespace}") from None
            raise

    def delete_jobs(self, namespace: str, run: str) -> None:
        listed = self._plain(
            self.batch.list_namespaced_job(
                namespace, label_selector=f"{LABEL_RUN}={run}", _request_timeout=self.timeout
            )
        )
        for job in listed.get("items") or []:
            meta = job.get("metadata") or {}
            if (meta.get("labels") or {}).get(LABEL_RUN) != run:
                continue
            try:
                self.batch.delete_namespaced_job(
                    meta["name"],
                    namespace,
                    propagation_policy="Background",
                    _request_timeout=self.timeout,
                )
            except kubernetes.client.ApiException as e:
                if e.status != 404:
                    raise

    def log_tail(self, namespace: str, job: str, lines: int) -> str:
        try:
            pods = self._plain(
                self.core.list_namespaced_pod(
                    namespace, label_selector=f"job-name={job}", _request_timeout=self.timeout
                )
            )
        except kubernetes.client.ApiException as e:
            raise LookupError(f"cannot list the Job's pods (HTTP {e.status})") from None
        mine = [
            p
            for p in pods.get("items") or []
            if ((p.get("metadata") or {}).get("labels") or {}).get("job-name") == job
        ]
        if not mine:
            raise LookupError("the Job has no pods left")
        newest = max(mine, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp")))
        try:
            text = self.core.read_namespaced_pod_log(
                newest["metadata"]["name"],
                namespace,
                tail_lines=lines,
                _request_timeout=self.timeout,
            )
        except kubernetes.client.ApiException as e:
            raise LookupError(f"cannot read pod logs (HTTP {e.status})") from None
        return str(text)
