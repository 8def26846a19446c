"""The committed analysis CRDs: structural, shaped as designed, and their CEL rules agree with the
models on every combination of the fields they relate."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel
from pydantic import BaseModel, ValidationError

from analysis.api import AnalysisRunSpec, Metric, PrometheusAuth, PrometheusSpec, Threshold
from rollouts.api import crd
from tests.unit.rollouts.api.test_crd import _through_client_model, node_at, structural_problems

CRD_DIR = Path(__file__).resolve().parents[4] / "crds"
FILES = {
    "AnalysisTemplate": "sluice.dev_analysistemplates.yaml",
    "ClusterAnalysisTemplate": "sluice.dev_clusteranalysistemplates.yaml",
    "AnalysisRun": "sluice.dev_analysisruns.yaml",
}


def _load(kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((CRD_DIR / FILES[kind]).read_text(encoding="utf-8"))
    return doc


def _schema(doc: Mapping[str, Any]) -> dict[str, Any]:
    (version,) = doc["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("kind", list(FILES))
def test_the_analysis_crds_are_generated_structural_and_known_to_the_client(kind: str) -> None:
    doc = _load(kind)
    assert (CRD_DIR / FILES[kind]).read_text().startswith(crd.HEADER)
    assert structural_problems(_schema(doc)) == []
    assert _through_client_model(doc) == doc
    names = doc["spec"]["names"]
    assert names["kind"] == kind and names["categories"] == ["sluice"]
    assert doc["metadata"]["name"] == f"{names['plural']}.sluice.dev"


def test_they_are_listed_for_kustomize_after_the_rollout() -> None:
    kustomization = yaml.safe_load((CRD_DIR / crd.KUSTOMIZATION).read_text(encoding="utf-8"))
    assert kustomization["resources"] == ["sluice.dev_rollouts.yaml", *FILES.values()]


def test_scopes_and_subresources() -> None:
    template, cluster, run = (_load(k) for k in FILES)
    assert template["spec"]["scope"] == "Namespaced"
    assert cluster["spec"]["scope"] == "Cluster"
    assert run["spec"]["scope"] == "Namespaced"
    assert _schema(template)["properties"]["spec"] == _schema(cluster)["properties"]["spec"]
    for doc in (template, cluster):
        assert "subresources" not in doc["spec"]["versions"][0]
        assert "status" not in _schema(doc)["properties"]
    assert run["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_run_printer_columns_point_at_fields_of_the_schema() -> None:
    run = _load("AnalysisRun")
    (version,) = run["spec"]["versions"]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Phase", "Rollout", "Kind", "Age", "Message"]
    assert columns["Message"]["priority"] == 1
    assert [n for n, c in columns.items() if "priority" in c] == ["Message"]
    assert columns["Age"]["jsonPath"] == ".metadata.creationTimestamp"
    for column in columns.values():
        if not column["jsonPath"].startswith(".metadata."):
            node = node_at(_schema(run), column["jsonPath"])
            assert node is not None and node["type"] == column["type"], column


def test_run_state_is_kept_as_written_and_evidence_is_typed() -> None:
    schema = _schema(_load("AnalysisRun"))
    node = node_at(schema, ".status.state")
    assert node is not None and node["x-kubernetes-preserve-unknown-fields"] is True
    assert node["type"] == "object" and "properties" not in node
    # the evidence is the statistics' typed record: the server keeps exactly its fields
    evidence = node_at(schema, ".status.metrics[].evidence")
    assert evidence is not None and "x-kubernetes-preserve-unknown-fields" not in evidence
    assert evidence["properties"]["logEValue"]["type"] == "number"
    assert evidence["properties"]["logThreshold"]["type"] == "number"
    assert evidence["required"] == ["method", "outcome"]
    values = node_at(schema, ".status.metrics[].measurements[].values")
    assert values is not None and values["properties"]["canaryEvents"]["type"] == "number"
    status_defaults = [n for n in _nodes(schema["properties"]["status"]) if "default" in n]
    assert status_defaults == []


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("AnalysisTemplate", ".spec.metrics"),
        ("AnalysisTemplate", ".spec.args"),
        ("AnalysisRun", ".spec.metrics"),
        ("AnalysisRun", ".spec.args"),
    ],
)
def test_named_lists_are_maps_so_the_server_refuses_duplicate_names(kind: str, path: str) -> None:
    node = node_at(_schema(_load(kind)), path)
    assert node is not None
    assert node["x-kubernetes-list-type"] == "map"
    assert node["x-kubernetes-list-map-keys"] == ["name"]
    assert "name" in node["items"]["required"]
    assert "maxItems" in node  # bounds the CEL cost of the rules on the items


def _nodes(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield node
    for sub in node.get("properties", {}).values():
        yield from _nodes(sub)
    if isinstance(node.get("items"), Mapping):
        yield from _nodes(node["items"])


def test_no_field_is_nullable() -> None:
    for kind in FILES:
        assert [n for n in _nodes(_schema(_load(kind))) if "nullable" in n] == []


# ---------------------------------------------------------------------------------------------
# CEL against the models
# ---------------------------------------------------------------------------------------------


def _rules(kind: str, path: str) -> list[Mapping[str, Any]]:
    node = node_at(_schema(_load(kind)), path)
    assert node is not None, path
    rules: list[Mapping[str, Any]] = node["x-kubernetes-validations"]
    return rules


_ENV = celpy.Environment()


@functools.cache
def _program(rule: str) -> Any:
    return _ENV.program(_ENV.compile(rule))


def _passes(rules: list[Mapping[str, Any]], obj: Mapping[str, Any]) -> bool:
    verdicts = []
    for rule in rules:
        result = _program(rule["rule"]).evaluate({"self": json_to_cel(dict(obj))})
        assert isinstance(result, celpy.celtypes.BoolType), (rule["rule"], result)
        verdicts.append(bool(result))
    return all(verdicts)


def _accepts(model: type[BaseModel], obj: Mapping[str, Any]) -> bool:
    try:
        model.model_validate(obj)
    except ValidationError:
        return False
    return True


def _agree(model: type[BaseModel], rules: list[Mapping[str, Any]], objs: list[Any]) -> int:
    accepted = 0
    for obj in objs:
        ok = _accepts(model, obj)
        assert _passes(rules, obj) == ok, (model.__name__, obj)
        accepted += ok
    return accepted


_ARMS = {
    "counts": {"events": "e", "total": "t"},
    "histogram": {"buckets": "b"},
    "gauge": {"value": "v"},
    "mixed": {"events": "e", "total": "t", "value": "v"},
    "half": {"events": "e"},
}


def _providers() -> Iterator[dict[str, Any]]:
    yield {"query": "q"}
    for arms in _ARMS.values():
        yield {"canary": arms, "baseline": arms}
    yield {"canary": _ARMS["counts"], "baseline": _ARMS["gauge"]}
    yield {"canary": _ARMS["counts"]}
    yield {"query": "q", "canary": _ARMS["counts"], "baseline": _ARMS["counts"]}
    yield {}


def _metrics() -> Iterator[dict[str, Any]]:
    judgements: list[dict[str, Any]] = [
        {"compare": {}},
        {"compare": {"method": "mann-whitney"}},
        {"compare": {"method": "sequential"}},
        {"compare": {"edges": [0.25, 1.0]}},
        {"compare": {"canaryPods": 2}},
        {"compare": {"canaryPods": 2, "podSpread": 0.2, "method": "sequential"}},
        {"compare": {"canaryPods": 2, "method": "mann-whitney"}},
        {"compare": {"podSpread": 0.2}},
        {"compare": {"latencyTolerance": {"quantile": 0.99, "increase": "10%"}}},
        {"compare": {"latencyTolerance": {"increase": "10%"}, "tolerance": 1.2}},
        {"compare": {"latencyTolerance": {"increase": "10%"}, "tolerance": 1.1}},
        {"threshold": {"max": 1.0}},
        {"compare": {}, "threshold": {"max": 1.0}},
        {},
    ]
    bounds: list[dict[str, Any]] = [
        {},
        {"count": 5},
        {"duration": "5m"},
        {"count": 5, "duration": "5m"},
    ]
    for kind, judgement, provider, bound in itertools.product(
        ["counts", "histogram", "gauge", "value"], judgements, list(_providers()), bounds
    ):
        yield {
            "name": "m",
            "kind": kind,
            "provider": {"prometheus": provider},
            **judgement,
            **bound,
        }


def _server_accepts(node: Mapping[str, Any], obj: Any) -> bool:
    """Every rule at every level of ``obj``, as the API server evaluates them."""
    if not isinstance(obj, Mapping):
        if isinstance(obj, list) and isinstance(node.get("items"), Mapping):
            return all(_server_accepts(node["items"], item) for item in obj)
        return True
    if not _passes(node.get("x-kubernetes-validations", []), obj):
        return False
    props = node.get("properties", {})
    return all(_server_accepts(props[k], v) for k, v in obj.items() if k in props)


def test_metric_rules_agree_with_the_model_on_every_combination() -> None:
    node = node_at(_schema(_load("AnalysisTemplate")), ".spec.metrics[]")
    assert node is not None
    metrics = list(_metrics())
    accepted = 0
    for metric in metrics:
        ok = _accepts(Metric, metric)
        assert _server_accepts(node, metric) == ok, metric
        accepted += ok
    assert 0 < accepted < len(metrics)  # both verdicts occur, so the agreement means something


def test_run_metric_rules_are_the_templates() -> None:
    assert _rules("AnalysisRun", ".spec.metrics[]") == _rules("AnalysisTemplate", ".spec.metrics[]")


def test_provider_rules_agree_with_the_model() -> None:
    objs = [
        {k: v for k, v in zip(("query", "canary", "baseline"), chosen, strict=True) if v}
        for chosen in itertools.product(
            ["q", None], [_ARMS["counts"], None], [_ARMS["counts"], None]
        )
    ]
    rules = _rules("AnalysisTemplate", ".spec.metrics[].provider.prometheus")
    assert _agree(PrometheusSpec, rules, objs) == 2


def test_auth_rules_agree_with_the_model() -> None:
    keys = ("bearerTokenKey", "usernameKey", "passwordKey")
    objs = [
        {"secretRef": {"name": "s"}, **{k: "k" for k, on in zip(keys, chosen, strict=True) if on}}
        for chosen in itertools.product([True, False], repeat=3)
    ]
    rules = _rules("AnalysisTemplate", ".spec.metrics[].provider.prometheus.auth")
    assert _agree(PrometheusAuth, rules, objs) == 2


def test_threshold_rules_agree_with_the_model() -> None:
    objs = [
        {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        for lo, hi in itertools.product([None, 0.5, 2.0], [None, 1.0, 2.0])
    ]
    rules = _rules("AnalysisTemplate", ".spec.metrics[].threshold")
    assert _agree(Threshold, rules, objs) == 7  # all but {} and min 2 > max 1


def test_run_step_rule_agrees_with_the_model() -> None:
    metric = {
        "name": "m",
        "kind": "value",
        "provider": {"prometheus": {"query": "q"}},
        "threshold": {"max": 1.0},
    }
    objs = [
        {"rollout": "web", "revision": "r", "kind": kind, "metrics": [metric], **step}
        for kind in ("step", "background", "prePromotion", "postPromotion")
        for step in ({}, {"stepIndex": 1})
    ]
    assert _agree(AnalysisRunSpec, _rules("AnalysisRun", ".spec"), objs) == 7
