"""The pod template's shape is checked before the model, so malformed input is an InvalidSpec
naming the field, never an AttributeError out of a validator (issue 13, item 5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rollouts.api.validation import InvalidSpec, parse_rollout
from tests.support.rollouts import rollout_doc


def bad(mutate: Callable[[dict[str, Any]], None]) -> list[str]:
    doc = rollout_doc(steps=[{"setWeight": 25}])
    mutate(doc)
    with pytest.raises(InvalidSpec) as e:
        parse_rollout(doc)
    return e.value.problems


def template(doc: dict[str, Any]) -> dict[str, Any]:
    t: dict[str, Any] = doc["spec"]["template"]
    return t


def test_metadata_as_a_string_names_the_field() -> None:
    def mutate(d: dict[str, Any]) -> None:
        template(d)["metadata"] = "app=web"

    assert bad(mutate) == ["spec.template.metadata: must be a mapping, got a str"]


def test_labels_that_are_not_strings_name_the_field() -> None:
    def mutate(d: dict[str, Any]) -> None:
        template(d)["metadata"]["labels"] = ["app", "web"]

    assert bad(mutate) == ["spec.template.metadata.labels: must be a mapping of strings"]


@pytest.mark.parametrize(
    ("container", "problem"),
    [
        ({"image": "web:1"}, "spec.template.spec.containers[0].name: is required"),
        ({"name": "", "image": "web:1"}, "spec.template.spec.containers[0].name: is required"),
        ({"name": 7, "image": "web:1"}, "spec.template.spec.containers[0].name: is required"),
        ("web:1", "spec.template.spec.containers[0]: must be a mapping, got a str"),
    ],
)
def test_containers_without_a_name_name_the_container(container: Any, problem: str) -> None:
    def mutate(d: dict[str, Any]) -> None:
        template(d)["spec"]["containers"] = [container]

    [got] = bad(mutate)
    assert got.startswith(problem), got


def test_pod_spec_and_containers_of_the_wrong_kind() -> None:
    def spec_list(d: dict[str, Any]) -> None:
        template(d)["spec"] = ["containers"]

    def containers_map(d: dict[str, Any]) -> None:
        template(d)["spec"]["containers"] = {"name": "web"}

    assert bad(spec_list) == ["spec.template.spec: must be a mapping, got a list"]
    assert bad(containers_map) == ["spec.template.spec.containers: must be a list, got a dict"]


def test_a_well_formed_template_still_parses() -> None:
    doc = rollout_doc(steps=[{"setWeight": 25}])
    assert parse_rollout(doc).spec.template["spec"]["containers"][0]["name"]
