"""Dispatch each input document to its translator and check what comes out.

The outputs go through the same parsers as ``sluice lint`` and the controller, so a conversion
that would not be accepted says so (as a ``todo`` naming the field) instead of producing a
manifest that fails on apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from analysis.api import InvalidAnalysisSpec, parse_template
from rollouts.api.validation import InvalidSpec, parse_rollout
from rollouts.convert import argo, flagger
from rollouts.convert.fields import Fields
from rollouts.convert.report import OUTPUT, Note

TEMPLATE_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")


@dataclass
class Conversion:
    documents: list[dict[str, Any]] = field(default_factory=list)
    """The Sluice manifests, in input order."""
    notes: list[Note] = field(default_factory=list)
    """Every field not translated as is, with the reason."""

    @property
    def invalid(self) -> list[Note]:
        return [n for n in self.notes if n.field == OUTPUT]


def _group(doc: dict[str, Any]) -> str:
    return (
        str(doc.get("apiVersion", "")).partition("/")[0]
        if "/" in str(doc.get("apiVersion", ""))
        else ""
    )


def _label(path: str, doc: Any) -> str:
    if not isinstance(doc, dict):
        return path
    name = (doc.get("metadata") or {}).get("name", "?")
    return f"{path}: {doc.get('kind', '?')}/{name}"


def _key(doc: dict[str, Any], default_namespace: str = "default") -> tuple[str, str]:
    meta = doc.get("metadata") or {}
    return str(meta.get("namespace") or default_namespace), str(meta.get("name"))


def convert_documents(docs: Iterable[tuple[str, Any]]) -> Conversion:
    """``docs``: (file, parsed YAML document) pairs, in order."""
    inputs = [(path, doc) for path, doc in docs if doc is not None]
    result = Conversion()
    deployments = {
        _key(d): d
        for _, d in inputs
        if isinstance(d, dict) and d.get("kind") == "Deployment" and _group(d) == "apps"
    }
    metric_templates = {
        _key(d): d
        for _, d in inputs
        if isinstance(d, dict) and d.get("kind") == "MetricTemplate" and _group(d) == flagger.GROUP
    }
    flagger_inputs = flagger.Inputs(deployments, metric_templates)
    revision_args: dict[str, dict[str, str]] = {}
    for _, doc in inputs:
        if isinstance(doc, dict) and doc.get("kind") == "Rollout" and _group(doc) == argo.GROUP:
            for template, args in argo.hash_args(doc).items():
                revision_args.setdefault(template, {}).update(args)
    used_deployments: set[tuple[str, str]] = set()
    template_users: dict[tuple[str, str], list[str]] = {}
    for _, doc in inputs:
        if isinstance(doc, dict) and doc.get("kind") == "Canary" and _group(doc) == flagger.GROUP:
            ns, name = _key(doc)
            spec = doc.get("spec") or {}
            used_deployments.add((ns, str((spec.get("targetRef") or {}).get("name"))))
            analysis = spec.get("analysis") or spec.get("canaryAnalysis") or {}
            for m in analysis.get("metrics") or []:
                ref = (m or {}).get("templateRef")
                if ref:
                    key = (str(ref.get("namespace") or ns), str(ref.get("name")))
                    template_users.setdefault(key, []).append(f"AnalysisTemplate {name}-metrics")

    for path, doc in inputs:
        source = _label(path, doc)
        if not isinstance(doc, dict):
            result.notes.append(Note(source, ".", "dropped", "not a mapping: not a manifest"))
            continue
        fields = Fields(doc, "", source, result.notes)
        group, kind = _group(doc), doc.get("kind")
        out: list[dict[str, Any]] = []
        if group == argo.GROUP and kind == "Rollout":
            out = [argo.rollout(fields)]
        elif group == argo.GROUP and kind in TEMPLATE_KINDS:
            name = str((doc.get("metadata") or {}).get("name"))
            out = [argo.analysis_template(fields, revision_args.get(name, {}))]
        elif group == flagger.GROUP and kind == "Canary":
            out = flagger.canary(fields, flagger_inputs)
        elif group == flagger.GROUP and kind == "MetricTemplate":
            flagger.metric_template(fields, template_users.get(_key(doc), []))
        elif group == "apps" and kind == "Deployment" and _key(doc) in used_deployments:
            fields.ignore(*doc)
            fields.note(
                None, "changed", "written out unchanged: the Rollout of its Canary adopts it"
            )
            result.documents.append(doc)
            continue
        else:
            fields.ignore(*doc)
            what = f"{doc.get('apiVersion')} {kind}"
            fields.note(
                None,
                "dropped",
                f"{what} is not an Argo Rollouts or Flagger kind Sluice converts; apply it "
                "unchanged if you still need it",
            )
            continue
        fields.finish()
        for converted in out:
            _check(converted, source, result.notes)
            result.documents.append(converted)
    return result


def _check(doc: dict[str, Any], source: str, notes: list[Note]) -> None:
    try:
        if doc["kind"] == "Rollout":
            parse_rollout(doc)
        else:
            parse_template(doc)
    except (InvalidSpec, InvalidAnalysisSpec) as e:
        name = doc["metadata"].get("name")
        for problem in e.problems:
            notes.append(
                Note(
                    source,
                    "(output)",
                    "todo",
                    f"converted {doc['kind']}/{name} is invalid: {problem}",
                )
            )
