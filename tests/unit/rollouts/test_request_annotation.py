"""The request annotation ``sluice.dev/request: <kind>@<id>``: parsing, problems, and the guarded
patch that removes it without losing a newer request."""

from __future__ import annotations

import copy

import jsonpatch
import pytest

from rollouts.engine.plan import REQUEST_KINDS, Request
from rollouts.request_annotation import (
    ANNOTATION,
    InvalidRequest,
    clear_patch,
    parse_request,
    pending,
)


def test_the_annotation_name() -> None:
    assert ANNOTATION == "sluice.dev/request"


@pytest.mark.parametrize("kind", REQUEST_KINDS)
def test_every_kind_parses_and_the_id_is_the_whole_value(kind: str) -> None:
    request = parse_request(f"{kind}@2024-05-01T10:00:00Z")
    assert (request.kind, request.id) == (kind, f"{kind}@2024-05-01T10:00:00Z")


def test_all_six_kinds_are_known() -> None:
    assert set(REQUEST_KINDS) == {"promote", "promote-full", "abort", "retry", "pause", "resume"}


@pytest.mark.parametrize(
    "rid",
    ["1", "2024-05-01T10:00:00.123+02:00", "ci_run.42", "a" * 128, "Z"],
)
def test_ids_are_tokens(rid: str) -> None:
    assert parse_request(f"promote@{rid}").id == f"promote@{rid}"


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_request("  abort@7\n") == Request("abort", "abort@7")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("promote", "expected <kind>@<id>"),
        ("promote@", "expected <kind>@<id>"),
        ("", "expected <kind>@<id>"),
        ("@1", "unknown kind ''"),
        ("rollback@1", "unknown kind 'rollback'"),
        ("Promote@1", "unknown kind 'Promote'"),
        ("promote @1", "unknown kind 'promote '"),
        ("promote@-1", "the id must be a token"),
        ("promote@a b", "the id must be a token"),
        ("promote@1@2", "the id must be a token"),
        ("promote@" + "a" * 129, "at most 128"),
    ],
)
def test_invalid_values_name_the_annotation(value: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_request(value)
    message = str(info.value)
    assert message.startswith(f"annotation sluice.dev/request={value!r}")
    assert says in message


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(InvalidRequest, match="one of promote, promote-full, abort, retry"):
        parse_request("skip@1")


def test_invalid_request_is_a_value_error() -> None:
    assert issubclass(InvalidRequest, ValueError)


def test_pending_reads_the_annotation() -> None:
    assert pending(None) == pending({}) == pending({"other": "x"})
    assert pending(None).raw is None and pending(None).request is None
    ok = pending({ANNOTATION: "pause@3", "kubectl.kubernetes.io/last-applied": "{}"})
    assert ok.raw == "pause@3" and ok.request == Request("pause", "pause@3") and ok.problem is None
    bad = pending({ANNOTATION: "pause-now"})
    assert bad.raw == "pause-now" and bad.request is None
    assert bad.problem is not None and ANNOTATION in bad.problem


ROLLOUT = {
    "apiVersion": "sluice.dev/v1alpha1",
    "kind": "Rollout",
    "metadata": {
        "name": "web",
        "annotations": {ANNOTATION: "promote@1", "team": "shop"},
    },
    "spec": {"replicas": 4},
}


def test_clear_patch_removes_only_the_request_annotation() -> None:
    patch = clear_patch("promote@1")
    out = jsonpatch.apply_patch(ROLLOUT, patch, in_place=False)
    assert out["metadata"]["annotations"] == {"team": "shop"}
    assert out["spec"] == ROLLOUT["spec"]  # metadata-only: nothing for GitOps to revert


def test_clear_patch_is_guarded_by_a_test_of_the_value() -> None:
    patch = clear_patch("promote@1")
    assert patch[0] == {
        "op": "test",
        "path": "/metadata/annotations/sluice.dev~1request",  # '/' escaped per RFC 6901
        "value": "promote@1",
    }
    assert patch[1] == {"op": "remove", "path": "/metadata/annotations/sluice.dev~1request"}
    # a newer request written meanwhile makes the patch fail (the API server answers 422),
    # so it stays for the next reconcile instead of being lost
    newer = copy.deepcopy(ROLLOUT)
    newer["metadata"]["annotations"][ANNOTATION] = "abort@2"
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(newer, patch, in_place=False)


def test_clear_patch_uses_the_raw_value_even_with_whitespace() -> None:
    raw = " promote@1 "
    doc = copy.deepcopy(ROLLOUT)
    doc["metadata"]["annotations"][ANNOTATION] = raw
    out = jsonpatch.apply_patch(doc, clear_patch(raw), in_place=False)
    assert ANNOTATION not in out["metadata"]["annotations"]
