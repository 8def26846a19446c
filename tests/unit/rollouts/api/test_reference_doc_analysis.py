"""docs/reference/analysis.md: the three analysis kinds on one generated page."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from analysis.api import BUILTIN_ARGS
from rollouts.api import docs
from rollouts.api.crd import ANALYSIS_RUN, ANALYSIS_TEMPLATE, object_schema

PAGE = Path(__file__).resolve().parents[4] / "docs" / "reference" / "analysis.md"


@pytest.fixture(scope="module")
def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def _paths(node: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}.{name}"
        yield path
        while "items" in sub:
            sub, path = sub["items"], path + "[]"
        yield from _paths(sub, path)


def _section(page: str, kind: str) -> str:
    start = page.index(f"\n## {kind}\n")
    end = page.find("\n## ", start + 1)
    return page[start : end if end != -1 else None]


def test_the_committed_page_is_generated_from_the_models() -> None:
    assert docs.render_all()["analysis.md"] == PAGE.read_text(encoding="utf-8")
    assert docs.check(PAGE.parent) == []


def test_every_field_of_each_kind_has_a_row_in_its_section(page: str) -> None:
    for defn, parts in ((ANALYSIS_TEMPLATE, ("spec",)), (ANALYSIS_RUN, ("spec", "status"))):
        section = _section(page, defn.kind)
        schema = object_schema(defn)
        for part in parts:
            for path in _paths(schema["properties"][part], part):
                assert f"| `{path}` |" in section, (defn.kind, path)


def test_the_cluster_template_points_at_the_shared_spec(page: str) -> None:
    section = _section(page, "ClusterAnalysisTemplate")
    assert "cluster-scoped" in section
    assert "Its spec is the AnalysisTemplate's (above)." in section
    assert "| `spec." not in section


def test_every_table_row_has_as_many_cells_as_its_header(page: str) -> None:
    """A CEL `||` unescaped would split a cell in two and shift the table."""
    width = 0
    for line in page.splitlines():
        if not line.startswith("|"):
            width = 0
            continue
        cells = len(re.split(r"(?<!\\)\|", line)) - 2
        if width == 0:
            width = cells
        assert cells == width, line
    assert "\\|\\|" in page  # the rules with || are there, escaped


def test_placeholders_and_builtin_args_are_documented(page: str) -> None:
    section = _section(page, "Query placeholders")
    assert "{app={{args.app}}}" in section and "{{window}}" in section
    for name in BUILTIN_ARGS:
        assert f"`{name}`" in section


def test_run_columns_and_rules_are_listed(page: str) -> None:
    section = _section(page, "AnalysisRun")
    assert "| Message | `.status.message` | with `-o wide` |" in section
    assert "| `spec` | a step run needs stepIndex |" in section
