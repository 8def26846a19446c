"""Turn a pydantic model's JSON Schema into a Kubernetes *structural* schema.

The API server accepts only a subset of JSON Schema in a CRD (OpenAPI v3.0 flavoured, "structural"):
no ``$ref``, a ``type`` on every node, no ``additionalProperties: false``, boolean
``exclusiveMinimum``, unions only in the one int-or-string shape. Pydantic speaks JSON Schema
2020-12, so the models cannot be pasted in; this module translates, and refuses loudly (SchemaError)
whatever has no faithful translation, so a new model construct fails the generator rather than the
``kubectl apply`` of a user.

Optional fields are *not* marked ``nullable``. The API server prunes a ``null`` sent for a
non-nullable field, so ``pause: null`` is stored as an absent ``pause``: exactly what the models
mean by ``None``, and what the CEL ``has(self.pause)`` rules need to agree with ``exactly_one``.
With ``nullable: true`` the null would be stored, ``has()`` would be true, and the API server
would reject a step the models accept.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

INT_OR_STRING = "x-kubernetes-int-or-string"
PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
VALIDATIONS = "x-kubernetes-validations"

# JSON Schema keys the API server understands and that need no translation.
_PASSTHROUGH = frozenset(
    {
        "description",
        "type",
        "pattern",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
        "required",
        VALIDATIONS,
        PRESERVE_UNKNOWN,
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-embedded-resource",
    }
)
# Keys handled by the translation itself.
_TRANSLATED = frozenset(
    {
        "$ref",
        "allOf",
        "anyOf",
        "oneOf",
        "const",
        "default",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "format",
        "uniqueItems",
        "items",
        "properties",
        "additionalProperties",
        INT_OR_STRING,
    }
)
# Annotations for humans or other tools that Kubernetes has no field for.
_DROPPED = frozenset(
    {"title", "examples", "readOnly", "writeOnly", "deprecated", "discriminator", "$schema"}
)
_SCALARS = frozenset({"string", "integer", "number", "boolean"})
# Formats whose meaning is the same for pydantic and the API server. Not "duration" (ISO 8601 for
# pydantic's timedelta, Go's "1h30m" for Kubernetes) nor "binary" (bytes are not base64 "byte").
_FORMATS = frozenset(
    {"date-time", "date", "uri", "email", "hostname", "ipv4", "ipv6", "uuid", "password"}
)


class SchemaError(ValueError):
    """A model uses a construct that a Kubernetes structural schema cannot express."""


def structural_schema(
    model: type[BaseModel],
    *,
    mode: Literal["validation", "serialization"] = "validation",
    defaults: bool = True,
    nullable: bool = False,
) -> dict[str, Any]:
    """The structural schema of ``model`` as it appears on the wire (camelCase aliases).

    ``mode``: "validation" for what users write (spec), "serialization" for what the controller
    writes (status). ``defaults``: keep the models' defaults, which the API server then applies;
    only for user-written objects, since a default in status would be invented by the server rather
    than reported by Sluice. ``nullable``: mark optional fields ``nullable`` (see the module doc for
    why that is off).
    """
    raw = model.model_json_schema(by_alias=True, mode=mode)
    defs = raw.pop("$defs", {})
    return _Translator(defs, defaults=defaults, nullable=nullable).node(raw, model.__name__)


class _Translator:
    def __init__(self, defs: Mapping[str, Any], *, defaults: bool, nullable: bool) -> None:
        self._defs = defs
        self._defaults = defaults
        self._nullable = nullable

    def node(
        self, schema: Mapping[str, Any], path: str, refs: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        schema, refs, optional = self._flatten(schema, path, refs)
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _DROPPED:
                continue
            if key in _PASSTHROUGH:
                out[key] = copy.deepcopy(value)  # shared $defs must not alias in YAML
            elif key not in _TRANSLATED:
                raise SchemaError(f"{path}: JSON Schema keyword {key!r} has no Kubernetes form")

        if "format" in schema:
            if schema["format"] not in _FORMATS:
                raise SchemaError(
                    f"{path}: format {schema['format']!r} means something else to Kubernetes "
                    "(or nothing); give the type a WithJsonSchema"
                )
            out["format"] = schema["format"]
        if "const" in schema:
            out["enum"] = [copy.deepcopy(schema["const"])]
            out.setdefault("type", _json_type(schema["const"], path))
        for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if bound in schema:  # 2020-12 puts the number here; OpenAPI 3.0 wants a flag
                out[plain] = schema[bound]
                out[bound] = True

        if schema.get(INT_OR_STRING) or _is_int_or_string(schema):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            out[INT_OR_STRING] = True
        elif "anyOf" in schema or "oneOf" in schema:
            raise SchemaError(
                f"{path}: unions other than X | None and int | str have no structural form; "
                "use one model with optional fields and an exactly-one rule"
            )

        if "properties" in schema:
            out["type"] = "object"
            out["properties"] = {
                name: self.node(sub, f"{path}.{name}", refs)
                for name, sub in schema["properties"].items()
            }
        extra = schema.get("additionalProperties")
        shaped = {"properties", "additionalProperties"} & set(schema)
        free_form = out.get("type") == "object" and not shaped
        if extra is True or free_form:
            # a free-form mapping (dict[str, Any]): keep what the user wrote instead of pruning it
            out[PRESERVE_UNKNOWN] = True
        elif isinstance(extra, Mapping):
            if "properties" in schema:
                raise SchemaError(f"{path}: properties and a typed additionalProperties conflict")
            out["additionalProperties"] = self.node(extra, f"{path}.*", refs)
        # additionalProperties: false is dropped: the API server prunes unknown fields anyway, and
        # refuses the keyword next to properties.

        if "items" in schema:
            out["items"] = self.node(schema["items"], f"{path}[]", refs)
        elif out.get("type") == "array":
            raise SchemaError(f"{path}: an array needs a single items schema (no tuples)")
        if schema.get("uniqueItems"):
            if out["items"].get("type") not in _SCALARS:
                raise SchemaError(f"{path}: uniqueItems is allowed only for lists of scalars")
            out["x-kubernetes-list-type"] = "set"

        if "type" not in out and not out.get(INT_OR_STRING):
            if set(out) - {"description"}:
                raise SchemaError(f"{path}: a node without a type: {dict(schema)!r}")
            out[PRESERVE_UNKNOWN] = True  # Any: whatever the user writes is kept

        if self._defaults and schema.get("default") is not None:
            out["default"] = copy.deepcopy(schema["default"])
        if optional and self._nullable:
            out["nullable"] = True
        return out

    def _flatten(
        self, schema: Mapping[str, Any], path: str, refs: tuple[str, ...]
    ) -> tuple[dict[str, Any], tuple[str, ...], bool]:
        """Inline ``$ref``, one-member ``allOf`` and ``anyOf: [X, {type: null}]``.

        The referring node's keys (description, default) win over the referred schema's. Returns
        the flat schema, the models inlined on the way (to refuse recursion), and whether null was
        allowed.
        """
        out = dict(schema)
        optional = False
        while True:
            if "$ref" in out:
                name = out.pop("$ref").rsplit("/", 1)[-1]
                if name in refs:
                    raise SchemaError(f"{path}: {name} contains itself; schemas must be finite")
                refs = (*refs, name)
                out = {**self._defs[name], **out}
            elif "allOf" in out and len(out["allOf"]) == 1:
                (inner,) = out.pop("allOf")
                out = {**inner, **out}
            elif "allOf" in out:
                raise SchemaError(f"{path}: allOf of several schemas has no structural form")
            elif any(_has_null(out.get(key)) for key in ("anyOf", "oneOf")):
                key = "anyOf" if _has_null(out.get("anyOf")) else "oneOf"
                rest = [m for m in out.pop(key) if m.get("type") != "null"]
                optional = True
                out = {**rest[0], **out} if len(rest) == 1 else {**out, key: rest}
            else:
                return out, refs, optional


def _has_null(members: object) -> bool:
    return isinstance(members, list) and any(m.get("type") == "null" for m in members)


def _is_int_or_string(schema: Mapping[str, Any]) -> bool:
    members = schema.get("anyOf") or schema.get("oneOf")
    if not members or len(members) != 2:
        return False
    return sorted(m.get("type", "") for m in members) == ["integer", "string"]


def _json_type(value: object, path: str) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    raise SchemaError(f"{path}: a constant of type {type(value).__name__} has no Kubernetes form")
