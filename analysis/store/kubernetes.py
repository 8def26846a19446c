"""The Kubernetes side of analysis: templates, AnalysisRuns and auth Secrets over the API.

This is the operator's ``AnalysisRunStore`` (``analysis.store.port``). Runs are Kubernetes
objects so ``kubectl get analysisruns`` shows them and a restarted controller resumes from their
status (the e-processes live in ``status.state``). Each run is owned by its Rollout (deleting the
Rollout deletes its runs) and labelled with the Rollout and revision; runs of older revisions
beyond the history limit are deleted by ``analysis.lifecycle.RunLifecycle.prune`` through
``delete_run``.

Writes go through the status subresource where the API server demands it: an object created with
a status subresource has its ``status`` dropped on create, so ``create_run`` writes the status in a
second request, and finishes that second step if a crash left a run without status. Status is
replaced whole with a JSON patch, not merged: a merge patch would keep keys of ``status.state``
the run loop had dropped. Transient API failures (409, 429, 5xx, timeouts) are retried a few
times, as ``KubeCluster`` does; what is left fails the reconcile, which the operator retries.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import kubernetes

from analysis.api import (
    API_GROUP,
    API_VERSION,
    LABEL_REVISION,
    LABEL_ROLLOUT,
    AnalysisRun,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    InvalidAnalysisSpec,
    parse_run,
    parse_template,
)
from analysis.retry_policy import RetryPolicy
from analysis.store.port import RunOwner, SecretNotFound
from analysis.store.retry import DEFAULT_TIMEOUT, Timeout, retrying

log = logging.getLogger(__name__)

TEMPLATES = "analysistemplates"
CLUSTER_TEMPLATES = "clusteranalysistemplates"
RUNS = "analysisruns"
JSON_PATCH = "application/json-patch+json"

T = TypeVar("T")

FIELD_MANAGER = "sluice"


def owner_reference(owner: RunOwner) -> dict[str, Any]:
    """The Rollout as the run's controlling owner, so garbage collection removes its runs."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "Rollout",
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


class KubeAnalysisStore:
    """AnalysisTemplates, ClusterAnalysisTemplates, AnalysisRuns and Secrets in a cluster."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        field_manager: str = FIELD_MANAGER,
        retries: int = 3,
        backoff: float = 0.2,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.api = api
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.field_manager = field_manager
        self.retries = retries
        self.policy = RetryPolicy(attempts=retries + 1, first=backoff)
        self.timeout = timeout

    # ------------------------------------------------------------------------- plumbing
    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        return retrying(what, fn, policy=self.policy)

    def _or_none(self, what: str, fn: Callable[[], Any]) -> dict[str, Any] | None:
        """``fn()`` as a plain dict, or None when the object does not exist."""

        def call() -> dict[str, Any] | None:
            try:
                obj = fn()
            except kubernetes.client.ApiException as e:
                if e.status == 404:
                    return None
                raise
            out: dict[str, Any] = self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
            return out

        return self._retrying(what, call)

    # ------------------------------------------------------------------------- templates
    def get_template(
        self, namespace: str, name: str, cluster_scope: bool = False
    ) -> AnalysisTemplate | ClusterAnalysisTemplate | None:
        """The template, or None when it does not exist.

        Raises ``InvalidAnalysisSpec`` naming the template when it exists but does not validate
        (the CRD's schema cannot check everything, placeholders for one).
        """
        if cluster_scope:
            doc = self._or_none(
                f"read ClusterAnalysisTemplate {name}",
                lambda: self.custom.get_cluster_custom_object(
                    API_GROUP, API_VERSION, CLUSTER_TEMPLATES, name, _request_timeout=self.timeout
                ),
            )
            where = f"ClusterAnalysisTemplate {name}"
        else:
            doc = self._or_none(
                f"read AnalysisTemplate {namespace}/{name}",
                lambda: self.custom.get_namespaced_custom_object(
                    API_GROUP,
                    API_VERSION,
                    namespace,
                    TEMPLATES,
                    name,
                    _request_timeout=self.timeout,
                ),
            )
            where = f"AnalysisTemplate {namespace}/{name}"
        if doc is None:
            return None
        doc.setdefault("kind", "ClusterAnalysisTemplate" if cluster_scope else "AnalysisTemplate")
        try:
            return parse_template(doc)
        except InvalidAnalysisSpec as e:
            raise InvalidAnalysisSpec([f"{where}: {p}" for p in e.problems]) from None

    # ------------------------------------------------------------------------------ runs
    def create_run(self, owner: RunOwner, run: AnalysisRun) -> AnalysisRun:
        """Create ``run`` owned by ``owner``; an existing run of that name is returned as is
        (apart from a missing status, which a crash between the two writes can leave)."""
        ns = owner.namespace
        name = run.metadata.name
        body = run.wire()
        body.pop("status", None)  # the API server drops it on create: written separately below
        meta = body["metadata"]
        meta["namespace"] = ns
        meta["labels"] = {
            **(meta.get("labels") or {}),
            LABEL_ROLLOUT: owner.name,
            LABEL_REVISION: run.spec.revision,
        }
        owners = [o for o in meta.get("ownerReferences") or [] if o.get("kind") != "Rollout"]
        meta["ownerReferences"] = [owner_reference(owner), *owners]
        for server_side in ("uid", "resourceVersion", "generation", "creationTimestamp"):
            meta.pop(server_side, None)

        def create() -> dict[str, Any] | None:
            try:
                created = self.custom.create_namespaced_custom_object(
                    API_GROUP,
                    API_VERSION,
                    ns,
                    RUNS,
                    body,
                    field_manager=self.field_manager,
                    _request_timeout=self.timeout,
                )
            except kubernetes.client.ApiException as e:
                if e.status == 409:  # AlreadyExists: the only conflict a create can meet
                    return None
                raise
            return cast(dict[str, Any], created)

        created = self._retrying(f"create AnalysisRun {ns}/{name}", create)
        if created is None:
            existing = self.get_run(ns, name)
            if existing is None:  # deleted between our create and read: try once more
                return self.create_run(owner, run)
            if existing.status is not None or run.status is None:
                return existing
            return self.update_run_status(existing.model_copy(update={"status": run.status}))
        stored = parse_run(created)
        if run.status is None:
            return stored
        return self.update_run_status(stored.model_copy(update={"status": run.status}))

    def get_run(self, namespace: str, name: str) -> AnalysisRun | None:
        doc = self._or_none(
            f"read AnalysisRun {namespace}/{name}",
            lambda: self.custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, RUNS, name, _request_timeout=self.timeout
            ),
        )
        return None if doc is None else parse_run(doc)

    def list_runs(self, owner: RunOwner) -> list[AnalysisRun]:
        """The runs labelled with the Rollout. A run that no longer validates is skipped with a
        warning: it cannot be resumed, and one bad object must not stop the Rollout's others."""
        ns, rollout = owner.namespace, owner.name
        selector = f"{LABEL_ROLLOUT}={rollout}"
        listed: dict[str, Any] = self._retrying(
            f"list AnalysisRuns of {ns}/{rollout}",
            lambda: cast(
                dict[str, Any],
                self.custom.list_namespaced_custom_object(
                    API_GROUP,
                    API_VERSION,
                    ns,
                    RUNS,
                    label_selector=selector,
                    _request_timeout=self.timeout,
                ),
            ),
        )
        out = []
        for doc in listed.get("items") or []:
            labels = (doc.get("metadata") or {}).get("labels") or {}
            if labels.get(LABEL_ROLLOUT) != rollout:
                continue  # a server that ignores the selector (the test emulator) lists them all
            try:
                out.append(parse_run(doc))
            except InvalidAnalysisSpec as e:
                log.warning("AnalysisRun %s/%s skipped: %s", ns, doc["metadata"].get("name"), e)
        return out

    def update_run_status(self, run: AnalysisRun) -> AnalysisRun:
        """Replace the run's status (only the status) and return the stored run."""
        ns = run.metadata.namespace or "default"
        name = run.metadata.name
        status = {} if run.status is None else run.status.wire()
        patch = [{"op": "add", "path": "/status", "value": status}]  # add replaces a present one
        stored = self._retrying(
            f"write status of AnalysisRun {ns}/{name}",
            lambda: self.custom.patch_namespaced_custom_object_status(
                API_GROUP,
                API_VERSION,
                ns,
                RUNS,
                name,
                patch,
                field_manager=self.field_manager,
                _content_type=JSON_PATCH,
                _request_timeout=self.timeout,
            ),
        )
        return parse_run(stored)

    def delete_run(self, namespace: str, name: str) -> None:
        """Delete a run; one already gone (404) is fine. Background propagation: a run owns
        nothing, so there is nothing for the request to wait for."""

        def delete() -> None:
            try:
                self.custom.delete_namespaced_custom_object(
                    API_GROUP,
                    API_VERSION,
                    namespace,
                    RUNS,
                    name,
                    propagation_policy="Background",
                    _request_timeout=self.timeout,
                )
            except kubernetes.client.ApiException as e:
                if e.status != 404:
                    raise

        self._retrying(f"delete AnalysisRun {namespace}/{name}", delete)

    # --------------------------------------------------------------------------- secrets
    def resolve_secret(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, decoded. A trailing newline is dropped: ``kubectl create secret
        --from-file`` keeps the file's, and no token or password means it."""
        try:
            secret = self._or_none(
                f"read Secret {namespace}/{name}",
                lambda: self.core.read_namespaced_secret(
                    name, namespace, _request_timeout=self.timeout
                ),
            )
        except kubernetes.client.ApiException as e:
            if e.status != 403:
                raise
            # the shipped ClusterRole grants no Secret reads: a Role per namespace does
            raise SecretNotFound(
                f"Secret {namespace}/{name}: the controller may not read Secrets in namespace "
                f"{namespace}; grant it with deploy/rbac/secret-reader.yaml there (or the Helm "
                "chart's rbac.secretReaders), see docs/install.md"
            ) from None
        if secret is None:
            raise SecretNotFound(f"Secret {namespace}/{name} not found")
        data = secret.get("data") or {}
        if key not in data:
            raise SecretNotFound(f"Secret {namespace}/{name} has no key {key!r}")
        try:
            value = base64.b64decode(data[key], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise SecretNotFound(
                f"Secret {namespace}/{name} key {key!r} is not base64-encoded UTF-8 text"
            ) from None
        return value.removesuffix("\n").removesuffix("\r")
