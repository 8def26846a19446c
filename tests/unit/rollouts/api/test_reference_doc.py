"""docs/reference/rollout.md: generated from the CRD schema and committed up to date."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from rollouts.api import docs
from rollouts.api.base import ApiModel
from rollouts.api.crd import ROLLOUT, CrdDefinition, object_schema

REFERENCE_DIR = Path(__file__).resolve().parents[4] / "docs" / "reference"


def _paths(node: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}.{name}"
        yield path
        while "items" in sub:
            sub, path = sub["items"], path + "[]"
        yield from _paths(sub, path)


@pytest.fixture(scope="module")
def page() -> str:
    return (REFERENCE_DIR / "rollout.md").read_text(encoding="utf-8")


def test_the_committed_reference_matches_the_models() -> None:
    problems = docs.check(REFERENCE_DIR)
    assert not problems, (
        "docs/reference is out of date with rollouts/api; run: python -m rollouts.api.docs\n"
        + "\n".join(problems)
    )


def test_every_field_of_the_crd_has_a_row(page: str) -> None:
    schema = object_schema(ROLLOUT)
    for part in ("spec", "status"):
        for path in _paths(schema["properties"][part], part):
            assert f"| `{path}` |" in page, path


def test_every_cel_rule_is_documented_with_its_field(page: str) -> None:
    assert (
        "| `spec.strategy.canary.steps[]` | must set exactly one of setWeight, pause, analysis, "
        "setHeaderRoute, setMirrorRoute, gate |" in page
    )
    assert "| `spec.strategy` | must set exactly one of canary, blueGreen |" in page
    assert "| `spec.strategy.canary.trafficRouting` | must set exactly one of istio," in page


def test_a_field_row_shows_type_bounds_default_and_description() -> None:
    class Knob(ApiModel):
        """A knob."""

        level: int = Field(default=3, ge=0, le=10, description="How far | to turn it.\n\nGently.")

    page = docs.render(CrdDefinition(kind="Knob", plural="knobs", spec_model=Knob))
    row = "| `spec.level` | integer, 0 to 10 |  | `3` | How far \\| to turn it.<br><br>Gently. |"
    assert row in page
    assert "## Status" not in page


def test_main_check_fails_on_a_stale_page_and_passes_after_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert docs.main(["--check", "--out", str(tmp_path)]) == 1
    assert "run python -m rollouts.api.docs" in capsys.readouterr().err
    assert docs.main(["--out", str(tmp_path)]) == 0
    assert docs.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "rollout.md").write_text("edited by hand\n")
    assert docs.main(["--check", "--out", str(tmp_path)]) == 1
    assert "+# Rollout reference" in capsys.readouterr().err
