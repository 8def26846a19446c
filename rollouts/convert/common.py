"""Pieces both translators share: metadata, and the Sluice document shells."""

from __future__ import annotations

from typing import Any

from rollouts.api.rollout import API_GROUP, API_VERSION
from rollouts.convert.fields import Fields
from rollouts.convert.report import Note

SLUICE_API_VERSION = f"{API_GROUP}/{API_VERSION}"
SERVER_SET = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def metadata(meta: Fields, *, cluster_scoped: bool = False) -> dict[str, Any]:
    """name, namespace, labels and annotations carried over; what the API server sets is left
    out (it is not part of a manifest)."""
    out: dict[str, Any] = {"name": meta.get("name")}
    namespace = meta.get("namespace")
    if namespace is not None and not cluster_scoped:
        out["namespace"] = namespace
    labels = meta.get("labels")
    if labels:
        out["labels"] = dict(labels)
    annotations = dict(meta.get("annotations") or {})
    if LAST_APPLIED in annotations:
        del annotations[LAST_APPLIED]
        where = meta.where(f"annotations.{LAST_APPLIED}")
        meta.notes.append(Note(meta.source, where, "dropped", "written by kubectl apply, not Git"))
    if annotations:
        out["annotations"] = annotations
    meta.ignore(*SERVER_SET)
    meta.drop("ownerReferences", "owner references belong to the live object, not Git")
    meta.drop("finalizers", "set by the controller that owns the object")
    meta.drop("generateName", "a converted manifest needs a fixed name")
    return out


def document(kind: str, meta: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": SLUICE_API_VERSION, "kind": kind, "metadata": meta, "spec": spec}
