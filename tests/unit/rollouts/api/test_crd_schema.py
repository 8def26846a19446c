"""The pydantic -> structural schema translation, on small models built for each construct.

The analysis kinds will bring constructs the Rollout does not use yet (``gt=0``, sets, unions); each
must either translate faithfully or stop the generator with a message naming the field.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from rollouts.api.base import Duration
from rollouts.api.schema import SchemaError, structural_schema


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Inner(_Model):
    """Inner's docstring."""

    name: str


class Outer(_Model):
    inner: Inner | None = None
    described: Inner = Field(description="The field's own words.")
    items: list[Inner] = Field(default_factory=list)
    labels: dict[str, str] | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    free: dict[str, Any] = Field(default_factory=dict)
    anything: Any = None
    rate: float = Field(default=0.5, gt=0, lt=1)
    tags: set[str] = Field(default_factory=set)
    mode: Literal["fast", "slow"] = "fast"
    version: Literal["v1"] = "v1"
    surge: int | str = 1
    maybe_surge: int | str | None = None
    wait: Duration | None = None
    at: datetime | None = None


@pytest.fixture(scope="module")
def outer() -> dict[str, Any]:
    return structural_schema(Outer)


def test_optional_model_is_inlined_without_ref_or_nullable(outer: dict[str, Any]) -> None:
    assert outer["properties"]["inner"] == {
        "type": "object",
        "description": "Inner's docstring.",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
    }


def test_nullable_can_be_asked_for() -> None:
    schema = structural_schema(Outer, nullable=True)
    assert schema["properties"]["inner"]["nullable"] is True
    assert "nullable" not in schema["properties"]["described"]


def test_the_fields_description_wins_over_the_models(outer: dict[str, Any]) -> None:
    assert outer["properties"]["described"]["description"] == "The field's own words."


def test_lists_and_maps(outer: dict[str, Any]) -> None:
    props = outer["properties"]
    assert props["items"]["items"]["properties"] == {"name": {"type": "string"}}
    assert props["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert props["counts"]["additionalProperties"] == {"type": "integer"}


def test_free_form_values_are_preserved_not_pruned(outer: dict[str, Any]) -> None:
    props = outer["properties"]
    assert props["free"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert props["anything"] == {"x-kubernetes-preserve-unknown-fields": True}


def test_exclusive_bounds_become_openapi_v3_flags(outer: dict[str, Any]) -> None:
    assert outer["properties"]["rate"] == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
        "exclusiveMaximum": True,
        "default": 0.5,
    }


def test_a_set_is_a_list_type_set_not_unique_items(outer: dict[str, Any]) -> None:
    tags = outer["properties"]["tags"]
    assert tags["x-kubernetes-list-type"] == "set"
    assert "uniqueItems" not in tags


def test_literals_are_string_enums(outer: dict[str, Any]) -> None:
    props = outer["properties"]
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"], "default": "fast"}
    assert props["version"] == {"type": "string", "enum": ["v1"], "default": "v1"}


@pytest.mark.parametrize("field", ["surge", "maybeSurge", "wait"])
def test_int_or_string_has_no_type_and_the_kubernetes_any_of(
    outer: dict[str, Any], field: str
) -> None:
    node = outer["properties"][field]
    assert "type" not in node
    assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert node["x-kubernetes-int-or-string"] is True


def test_datetimes_are_date_time_strings(outer: dict[str, Any]) -> None:
    assert outer["properties"]["at"] == {"type": "string", "format": "date-time"}


def test_no_titles_no_null_defaults_no_closed_objects(outer: dict[str, Any]) -> None:
    text = repr(outer)
    assert "title" not in text
    assert "'default': None" not in text
    assert "additionalProperties': False" not in text


def test_defaults_can_be_left_out_for_status() -> None:
    schema = structural_schema(Outer, defaults=False)
    assert "default" not in repr(schema)


def test_shared_sub_schemas_are_independent_copies() -> None:
    class Twice(_Model):
        a: Inner
        b: Inner

    schema = structural_schema(Twice)
    assert schema["properties"]["a"] == schema["properties"]["b"]
    assert schema["properties"]["a"] is not schema["properties"]["b"]
    assert schema["properties"]["a"]["required"] is not schema["properties"]["b"]["required"]


class Cat(_Model):
    meow: bool


class Dog(_Model):
    woof: bool


class Pet(_Model):
    pet: Cat | Dog


class Node(_Model):
    children: list[Node] | None = None


class Chain(_Model):
    next: Chain | None = None


class Pair(_Model):
    pair: tuple[int, int]


class Timeout(_Model):
    timeout: timedelta


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (Pet, "Pet.pet: unions other than"),
        (Node, "Node contains itself"),
        (Chain, "Chain contains itself"),
        (Pair, "Pair.pair: JSON Schema keyword 'prefixItems'"),
        (Timeout, "Timeout.timeout: format 'duration' means something else"),
    ],
)
def test_constructs_without_a_structural_form_stop_the_generator(
    model: type[BaseModel], message: str
) -> None:
    with pytest.raises(SchemaError, match=message.replace("(", r"\(").replace(".", r"\.")):
        structural_schema(model)
