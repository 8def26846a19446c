"""The operations' request values: the format the operator parses, fresh and time-ordered ids,
and a patch that touches nothing but the one annotation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rollouts.cli.listing import created_age, row, table, truncate
from rollouts.cli.operations import new_id, request_patch, request_value
from rollouts.engine.plan import REQUEST_KINDS
from rollouts.request_annotation import ANNOTATION, parse_request, pending


def test_id_format() -> None:
    rid = new_id(datetime(2025, 3, 1, 10, 0, 5, tzinfo=UTC))
    assert re.fullmatch(r"cli-20250301T100005Z-[0-9a-f]{4}", rid), rid


def test_id_is_utc_whatever_the_callers_zone() -> None:
    local = datetime(2025, 3, 1, 12, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert new_id(local).startswith("cli-20250301T100005Z-")


def test_ids_in_one_second_differ_and_later_ones_sort_after() -> None:
    t = datetime(2025, 3, 1, 10, 0, 5, tzinfo=UTC)
    same_second = {new_id(t) for _ in range(50)}
    assert len(same_second) > 40  # 4 hex digits: a collision among 50 is possible, not likely
    later = new_id(t + timedelta(seconds=1))
    assert all(later > earlier for earlier in same_second)


@pytest.mark.parametrize("kind", REQUEST_KINDS)
def test_every_kind_parses_as_the_operator_reads_it(kind: str) -> None:
    value = request_value(kind)  # type: ignore[arg-type]
    request = parse_request(value)
    assert request.kind == kind
    assert request.id == value  # status.lastRequest will hold exactly this
    assert pending({ANNOTATION: value, "other": "x"}).request == request


def test_the_patch_sets_only_the_request_annotation() -> None:
    assert request_patch("abort@cli-1") == {
        "metadata": {"annotations": {ANNOTATION: "abort@cli-1"}}
    }


# ----------------------------------------------------------------------------- list table

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2025-03-01T11:59:15Z", "45s"),
        ("2025-03-01T11:48:00Z", "12m"),
        ("2025-03-01T07:00:00Z", "5h"),
        ("2025-02-26T12:00:00Z", "3d"),
        (None, "-"),
        ("yesterday", "-"),
    ],
)
def test_age(created: str | None, expected: str) -> None:
    assert created_age(created, NOW) == expected


def test_row_of_a_canary_in_flight() -> None:
    doc = {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "creationTimestamp": "2025-03-01T11:00:00Z",
        },
        "spec": {"strategy": {"canary": {}}},
        "status": {
            "phase": "Paused",
            "step": "2/4",
            "weights": {"canary": 25},
            "stableRevision": "6d4f",
            "currentRevision": "7c9f",
            "message": "paused   at a\npause step " + "x" * 80,
        },
    }
    cells = row(doc, NOW, all_namespaces=True)
    assert cells[:9] == ["shop", "web", "canary", "Paused", "2/4", "25%", "6d4f", "7c9f", "1h"]
    assert cells[9].startswith("paused at a pause step x")
    assert len(cells[9]) == 60 and cells[9].endswith("...")


def test_row_of_a_settled_blue_green_and_of_one_without_status() -> None:
    settled = {
        "metadata": {"name": "api"},
        "spec": {"strategy": {"blueGreen": {}}},
        "status": {"phase": "Healthy", "stableRevision": "r1", "currentRevision": "r1"},
    }
    assert row(settled, NOW)[:7] == ["api", "blueGreen", "Healthy", "-", "-", "r1", "-"]
    new = {"metadata": {"name": "new"}, "spec": {"strategy": {"canary": {}}}}
    assert row(new, NOW) == ["new", "canary", "-", "-", "-", "-", "-", "-", ""]


def test_table_aligns_columns_and_strips_trailing_blanks() -> None:
    text = table(("A", "LONGER"), [("xxxx", "y"), ("z", "")])
    assert text.splitlines() == ["A     LONGER", "xxxx  y", "z"]


def test_truncate() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("a" * 20, 10) == "aaaaaaa..."
