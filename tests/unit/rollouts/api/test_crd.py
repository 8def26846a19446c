"""The committed CRDs: in sync with the models, and structural as the API server demands.

The structural checker here is written independently of ``rollouts.api.schema`` on purpose: a
translator bug must not be able to hide behind the same misunderstanding in its own test.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollouts.api import crd

ROOT = Path(__file__).resolve().parents[4]
CRD_DIR = ROOT / "crds"
ROLLOUT_FILE = CRD_DIR / "sluice.dev_rollouts.yaml"

_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
_FORBIDDEN = {"$ref", "$defs", "definitions", "title", "allOf", "oneOf", "not", "const"}
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def _schema(doc: Mapping[str, Any]) -> dict[str, Any]:
    (version,) = doc["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _default_problems(value: Any, node: Mapping[str, Any], path: str) -> list[str]:
    """Whether a default would itself pass the node's validation, as Kubernetes requires."""
    if node.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, (int, str)) and not isinstance(value, bool)
        return [] if ok else [f"{path}: default {value!r} is not an int or a string"]
    python_types: dict[str, tuple[type, ...]] = {
        "string": (str,),
        "integer": (int,),
        "number": (int, float),
        "boolean": (bool,),
        "object": (dict,),
        "array": (list,),
    }
    kind = node.get("type")
    if kind is None:
        return []
    wrong_bool = isinstance(value, bool) and kind != "boolean"
    if not isinstance(value, python_types[kind]) or wrong_bool:
        return [f"{path}: default {value!r} is not a {kind}"]
    value = _as_any(value)  # its type is checked above; the bounds below read it untyped
    problems = []
    if "enum" in node and value not in node["enum"]:
        problems.append(f"{path}: default {value!r} not in enum")
    if "minimum" in node and value < node["minimum"]:
        problems.append(f"{path}: default {value!r} below minimum")
    if "maximum" in node and value > node["maximum"]:
        problems.append(f"{path}: default {value!r} above maximum")
    if "minLength" in node and len(value) < node["minLength"]:
        problems.append(f"{path}: default {value!r} too short")
    if kind == "object":
        for key, sub in value.items():
            props = node.get("properties", {})
            if key in props:
                problems += _default_problems(sub, props[key], f"{path}.{key}")
            elif not node.get("x-kubernetes-preserve-unknown-fields"):
                problems.append(f"{path}: default sets unknown field {key}")
    if kind == "array":
        for i, item in enumerate(value):
            problems += _default_problems(item, node["items"], f"{path}[{i}]")
    return problems


def _as_any(value: object) -> Any:
    return value


def structural_problems(node: Any, path: str = "", in_status: bool = False) -> list[str]:
    """Everything in ``node`` that breaks the structural-schema rules (or our own conventions)."""
    if not isinstance(node, Mapping):
        return [f"{path}: a schema must be a mapping"]
    problems = [f"{path}: forbidden key {k}" for k in sorted(_FORBIDDEN & set(node))]
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    kind = node.get("type")
    if int_or_string:
        if kind is not None:
            problems.append(f"{path}: int-or-string must not have a type")
        if node.get("anyOf", _INT_OR_STRING) != _INT_OR_STRING:
            problems.append(f"{path}: int-or-string anyOf must be exactly integer, string")
    elif "anyOf" in node:
        problems.append(f"{path}: anyOf is only allowed for int-or-string")
    if kind is None and not (int_or_string or preserve):
        problems.append(f"{path}: missing type")
    if kind is not None and kind not in _TYPES:
        problems.append(f"{path}: unknown type {kind!r}")
    if "properties" in node and kind != "object":
        problems.append(f"{path}: properties without type: object")
    if "nullable" in node and not isinstance(node["nullable"], bool):
        problems.append(f"{path}: nullable must be a boolean")
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if bound in node and not isinstance(node[bound], bool):
            problems.append(f"{path}: {bound} must be a boolean in OpenAPI v3.0")
    if "enum" in node and kind not in ("string", "integer"):
        problems.append(f"{path}: enum on a {kind} node")
    extra = node.get("additionalProperties")
    if extra is not None:
        if extra is False:
            problems.append(f"{path}: additionalProperties: false")
        elif "properties" in node:
            problems.append(f"{path}: additionalProperties together with properties")
    if kind == "array" and not isinstance(node.get("items"), Mapping):
        problems.append(f"{path}: array without items")
    if "default" in node:
        if in_status:
            problems.append(f"{path}: default in status (the server would invent status)")
        problems += _default_problems(node["default"], node, path)
    for rule in node.get("x-kubernetes-validations", ()):
        if not isinstance(rule.get("rule"), str) or not rule.get("message"):
            problems.append(f"{path}: a validation needs a rule and a message")
    for name, sub in node.get("properties", {}).items():
        child = f"{path}.{name}"
        problems += structural_problems(sub, child, in_status or child == ".status")
    if isinstance(node.get("items"), Mapping):
        problems += structural_problems(node["items"], f"{path}[]", in_status)
    if isinstance(extra, Mapping):
        problems += structural_problems(extra, f"{path}.*", in_status)
    return problems


def node_at(schema: Mapping[str, Any], json_path: str) -> Mapping[str, Any] | None:
    """The node a JSONPath like ``.status.weights.canary`` or ``.spec.steps[]`` points to."""
    node: Mapping[str, Any] | None = schema
    for part in json_path.strip(".").split("."):
        name, _, rest = part.partition("[")
        if node is None or name not in node.get("properties", {}):
            return None
        node = node["properties"][name]
        if rest:
            node = node.get("items")
    return node


def _every_node(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield node
    for sub in node.get("properties", {}).values():
        yield from _every_node(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), Mapping):
            yield from _every_node(node[key])


@pytest.fixture(scope="module")
def rollout_crd() -> dict[str, Any]:
    return _load(ROLLOUT_FILE)


def test_committed_crds_match_the_models() -> None:
    problems = crd.check(CRD_DIR)
    assert not problems, (
        "crds/ is out of date with rollouts/api; run: python -m rollouts.api.crd\n"
        + "\n".join(problems)
    )


def test_every_generated_file_carries_the_do_not_edit_header() -> None:
    for path in sorted(CRD_DIR.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert "Generated by python -m rollouts.api.crd" in first, path
        assert "do not edit" in first, path


def test_kustomization_lists_every_crd_file() -> None:
    kustomization = _load(CRD_DIR / crd.KUSTOMIZATION)
    crd_files = sorted(p.name for p in CRD_DIR.glob("*.yaml") if p.name != crd.KUSTOMIZATION)
    assert sorted(kustomization["resources"]) == crd_files
    assert kustomization["kind"] == "Kustomization"


def test_the_committed_rollout_schema_is_structural(rollout_crd: dict[str, Any]) -> None:
    assert structural_problems(_schema(rollout_crd)) == []


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}}, "forbidden key $ref"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "anyOf is only allowed"),
        ({"type": "string", "title": "A"}, "forbidden key title"),
        ({"type": "object", "properties": {}, "additionalProperties": False}, "false"),
        ({"properties": {"a": {"type": "string"}}}, "properties without type: object"),
        ({"type": "string", "nullable": "yes"}, "nullable must be a boolean"),
        ({"type": "array"}, "array without items"),
        ({"properties": {"a": {}}, "type": "object"}, ".a: missing type"),
        ({"type": "integer", "default": "1"}, "is not a integer"),
        ({"type": "integer", "minimum": 0, "default": -1}, "below minimum"),
        ({"type": "string", "enum": ["a"], "default": "b"}, "not in enum"),
        ({"type": "string", "x-kubernetes-int-or-string": True}, "must not have a type"),
        ({"type": "integer", "minimum": 0, "exclusiveMinimum": 0}, "must be a boolean"),
        (
            {"type": "object", "properties": {"status": {"type": "string", "default": "x"}}},
            "default in status",
        ),
    ],
)
def test_the_structural_checker_catches(bad: dict[str, Any], expected: str) -> None:
    problems = structural_problems(bad)
    assert any(expected in p for p in problems), problems


def test_the_checker_accepts_the_kubernetes_int_or_string_shape() -> None:
    node = {"anyOf": _INT_OR_STRING, "x-kubernetes-int-or-string": True, "default": "25%"}
    assert structural_problems(node) == []


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        (".spec.strategy", {"canary", "blueGreen"}),
        (".spec.strategy.canary.trafficRouting", {"istio", "gatewayAPI", "smi", "nginx"}),
        (".spec.strategy.canary.steps[]", {"setWeight", "pause", "analysis"}),
    ],
)
def test_exactly_one_rules_sit_on_their_objects(
    rollout_crd: dict[str, Any], path: str, fields: set[str]
) -> None:
    node = node_at(_schema(rollout_crd), path)
    assert node is not None, path
    rules = node.get("x-kubernetes-validations", [])
    assert any(all(f"has(self.{f})" in r["rule"] for f in fields) for r in rules), rules
    assert fields <= set(node["properties"])


def test_cel_rules_name_only_fields_their_object_has(rollout_crd: dict[str, Any]) -> None:

    for node in _every_node(_schema(rollout_crd)):
        for rule in node.get("x-kubernetes-validations", ()):
            for name in re.findall(r"self\.(\w+)", rule["rule"]):
                assert name in node.get("properties", {}), (name, rule["rule"])


def test_printer_columns_point_at_fields_of_the_schema(rollout_crd: dict[str, Any]) -> None:
    (version,) = rollout_crd["spec"]["versions"]
    schema = _schema(rollout_crd)
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == [
        "Phase",
        "Step",
        "Weight",
        "Stable",
        "Canary",
        "Gate",
        "Age",
        "Message",
    ]
    for column in columns.values():
        if column["jsonPath"].startswith(".metadata."):
            continue  # ObjectMeta is the API server's, not in our schema
        node = node_at(schema, column["jsonPath"])
        assert node is not None, column
        assert node.get("type") == column["type"], column
    assert columns["Age"] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }
    assert columns["Message"]["priority"] == 1
    assert all("priority" not in c for name, c in columns.items() if name != "Message")


def test_scale_subresource_paths_exist(rollout_crd: dict[str, Any]) -> None:
    (version,) = rollout_crd["spec"]["versions"]
    schema = _schema(rollout_crd)
    scale = version["subresources"]["scale"]
    assert version["subresources"]["status"] == {}
    assert node_at(schema, scale["specReplicasPath"]) == node_at(schema, ".spec.replicas")
    for key, kind in [
        ("specReplicasPath", "integer"),
        ("statusReplicasPath", "integer"),
        ("labelSelectorPath", "string"),
    ]:
        node = node_at(schema, scale[key])
        assert node is not None and node.get("type") == kind, (key, node)


def test_names_scope_and_version_follow_the_design(rollout_crd: dict[str, Any]) -> None:
    spec = rollout_crd["spec"]
    assert rollout_crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert rollout_crd["metadata"]["name"] == "rollouts.sluice.dev"
    assert spec["group"] == "sluice.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "Rollout",
        "listKind": "RolloutList",
        "plural": "rollouts",
        "singular": "rollout",
        "shortNames": ["sro"],
        "categories": ["sluice"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


def test_top_level_schema_has_type_meta_and_requires_spec(rollout_crd: dict[str, Any]) -> None:
    schema = _schema(rollout_crd)
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]


def test_spec_keeps_model_defaults_and_status_has_none(rollout_crd: dict[str, Any]) -> None:
    schema = _schema(rollout_crd)
    canary = node_at(schema, ".spec.strategy.canary")
    assert canary is not None
    assert canary["properties"]["scaleDownDelaySeconds"]["default"] == 30
    assert canary["properties"]["maxSurge"]["default"] == "25%"
    status_defaults = [n for n in _every_node(schema["properties"]["status"]) if "default" in n]
    assert status_defaults == []


def test_no_field_is_nullable_so_the_server_prunes_nulls(rollout_crd: dict[str, Any]) -> None:
    """``pause: null`` must reach CEL as an absent field, as the models read None; see schema.py."""
    assert [n for n in _every_node(_schema(rollout_crd)) if "nullable" in n] == []


def test_pod_template_is_kept_as_written(rollout_crd: dict[str, Any]) -> None:
    template = dict(node_at(_schema(rollout_crd), ".spec.template"))
    template.pop("description", None)
    assert template == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


# ---------------------------------------------------------------------------------------------
# the generator's file handling
# ---------------------------------------------------------------------------------------------


def test_write_then_check_is_clean(tmp_path: Path) -> None:
    written = crd.write(tmp_path)
    assert sorted(p.name for p in written) == sorted(crd.render_all())
    assert crd.check(tmp_path) == []
    assert crd.write(tmp_path) == []  # nothing to do the second time


def test_check_shows_a_diff_of_a_hand_edit(tmp_path: Path) -> None:
    crd.write(tmp_path)
    path = tmp_path / "sluice.dev_rollouts.yaml"
    path.write_text(path.read_text().replace("- sro", "- ro"))
    (problem,) = crd.check(tmp_path)
    assert "-    - ro" in problem and "+    - sro" in problem


def test_check_reports_a_missing_file(tmp_path: Path) -> None:
    crd.write(tmp_path)
    (tmp_path / crd.KUSTOMIZATION).unlink()
    assert crd.check(tmp_path) == [f"{tmp_path / crd.KUSTOMIZATION}: missing"]


def test_stale_generated_files_are_reported_and_removed_but_hand_written_ones_kept(
    tmp_path: Path,
) -> None:
    crd.write(tmp_path)
    stale = tmp_path / "sluice.dev_gone.yaml"
    stale.write_text(crd.HEADER + "kind: CustomResourceDefinition\n")
    mine = tmp_path / "extra.yaml"
    mine.write_text("kind: ConfigMap\n")
    assert crd.check(tmp_path) == [f"{stale}: generated for a kind that no longer exists"]
    assert crd.write(tmp_path) == [stale]
    assert not stale.exists() and mine.exists()


def test_main_check_exits_nonzero_until_the_generator_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crd.main(["--check", "--out", str(tmp_path)]) == 1
    assert "run python -m rollouts.api.crd" in capsys.readouterr().err
    assert crd.main(["--out", str(tmp_path)]) == 0
    assert crd.main(["--check", "--out", str(tmp_path)]) == 0


def test_a_cluster_scoped_kind_without_status_or_scale() -> None:
    """The analysis kinds will come through the same path; ClusterAnalysisTemplate is like this."""
    from rollouts.api.rollout import AnalysisRef

    defn = crd.CrdDefinition(
        kind="ClusterThing", plural="clusterthings", spec_model=AnalysisRef, scope="Cluster"
    )
    doc = crd.build_crd(defn)
    (version,) = doc["spec"]["versions"]
    assert doc["spec"]["scope"] == "Cluster"
    assert "subresources" not in version and "additionalPrinterColumns" not in version
    assert set(version["schema"]["openAPIV3Schema"]["properties"]) == {
        "apiVersion",
        "kind",
        "metadata",
        "spec",
    }
    assert structural_problems(version["schema"]["openAPIV3Schema"]) == []
    assert defn.file_name == "sluice.dev_clusterthings.yaml"


# ---------------------------------------------------------------------------------------------
# the shape of the document, as the Kubernetes client models it
# ---------------------------------------------------------------------------------------------


def _through_client_model(doc: Mapping[str, Any]) -> Any:
    """Parse ``doc`` as an apiextensions.k8s.io/v1 CRD and serialize it back.

    The client's models know every CRD and JSONSchemaProps field and drop the rest, so a key that
    changes on the round trip is one the API server would not understand either.
    """
    from kubernetes.client import ApiClient

    api = ApiClient()
    parsed = api.deserialize(json.dumps(doc), "V1CustomResourceDefinition", "application/json")
    return api.sanitize_for_serialization(parsed)  # type: ignore[no-untyped-call]


def test_every_key_of_the_crd_is_a_known_crd_field(rollout_crd: dict[str, Any]) -> None:
    assert _through_client_model(rollout_crd) == rollout_crd


def test_the_round_trip_would_notice_a_misspelt_extension(rollout_crd: dict[str, Any]) -> None:
    broken = copy.deepcopy(rollout_crd)
    _schema(broken)["properties"]["spec"]["x-kubernetes-int-or-strin"] = True
    assert _through_client_model(broken) != broken
