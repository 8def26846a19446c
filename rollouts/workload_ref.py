"""``spec.workloadRef``: the Rollout runs the pod template of an existing Deployment.

The template (and, unless the Rollout sets one, the selector) is read from the Deployment on every
reconcile and put into the Rollout the engine sees, so the engine, the slots and the revision hash
work exactly as with an inline template: editing the Deployment's template in Git is a new
revision, and editing it back to the stable one rolls back. When the Deployment is missing the
Rollout is invalid, with the field named, and nothing is touched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from rollouts.api.rollout import LabelSelector, Rollout
from rollouts.api.validation import InvalidSpec
from rollouts.engine.plan import WorkloadObservation


def resolve(rollout: Rollout, deployment: Mapping[str, Any] | None) -> Rollout:
    """The Rollout with the Deployment's template (and selector) in its spec."""
    ref = rollout.spec.workload_ref
    if ref is None:
        return rollout
    where = f"Deployment {rollout.metadata.namespace}/{ref.name}"
    if deployment is None:
        raise InvalidSpec([f"spec.workloadRef.name: {where} not found"])
    spec = deployment.get("spec") or {}
    template = spec.get("template")
    if not isinstance(template, Mapping) or not template:
        raise InvalidSpec([f"spec.workloadRef.name: {where} has no spec.template"])
    selector = rollout.spec.selector
    if "selector" not in rollout.spec.model_fields_set:
        try:
            selector = LabelSelector.model_validate(spec.get("selector") or {})
        except ValueError:
            raise InvalidSpec([f"spec.workloadRef.name: {where} has an invalid selector"]) from None
    labels = (template.get("metadata") or {}).get("labels") or {}
    missing = {k: v for k, v in (selector.match_labels or {}).items() if labels.get(k) != v}
    if missing:
        raise InvalidSpec(
            [
                f"spec.workloadRef.name: {where}: the selector does not match its template's "
                f"labels (not matched: {', '.join(f'{k}={v}' for k, v in missing.items())})"
            ]
        )
    new_spec = rollout.spec.model_copy(
        update={"template": copy.deepcopy(dict(template)), "selector": selector}
    )
    return rollout.model_copy(update={"spec": new_spec})


def observation(deployment: Mapping[str, Any] | None) -> WorkloadObservation | None:
    if deployment is None:
        return None
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    replicas = spec.get("replicas")
    generation = (deployment.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    # a status the Deployment controller wrote before the last change (a scale-up) says nothing
    # about the pods that change asked for: count none ready until it has caught up
    stale = generation is not None and (observed is None or observed < generation)
    return WorkloadObservation(
        replicas=1 if replicas is None else int(replicas),
        ready_replicas=0 if stale else int(status.get("readyReplicas") or 0),
    )
