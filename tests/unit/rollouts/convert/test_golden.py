"""``sluice convert`` on representative Argo Rollouts and Flagger manifests (tests/fixtures/convert/).

Each case holds the input, the expected Sluice manifests (``expected.yaml``) and the expected
report (``report.txt``). The expected output must also be what Sluice accepts and runs: it passes
``sluice lint`` and ``sluice simulate`` takes it to Healthy, its analysis measured on the healthy
traffic scenario. Regenerate after a deliberate change with ``SLUICE_UPDATE_GOLDEN=1`` and review
the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from rollouts.cli.main import cli

ROOT = Path(__file__).resolve().parents[4]
FIXTURES = ROOT / "tests" / "fixtures" / "convert"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "input.yaml").exists())
UPDATE = os.environ.get("SLUICE_UPDATE_GOLDEN") == "1"


def convert(case: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.chdir(ROOT)  # the report names files as given: keep them relative
    result = CliRunner().invoke(cli, ["convert", f"tests/fixtures/convert/{case}/input.yaml"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_there_is_a_case_of_each_kind() -> None:
    text = "\n".join((FIXTURES / c / "input.yaml").read_text() for c in CASES)
    for kind in (
        "Rollout",
        "AnalysisTemplate",
        "ClusterAnalysisTemplate",
        "Canary",
        "MetricTemplate",
    ):
        assert f"kind: {kind}\n" in text, kind
    assert "blueGreen:" in text and "canary:" in text and "iterations:" in text


@pytest.mark.parametrize("case", CASES)
def test_conversion_matches_the_golden_files(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, report = convert(case, monkeypatch)
    assert code == 0, report
    expected, expected_report = FIXTURES / case / "expected.yaml", FIXTURES / case / "report.txt"
    if UPDATE:
        expected.write_text(out)
        expected_report.write_text(report)
    assert out == expected.read_text()
    assert report == expected_report.read_text()


@pytest.mark.parametrize("case", CASES)
def test_converted_manifests_pass_lint(case: str) -> None:
    result = CliRunner().invoke(cli, ["lint", str(FIXTURES / case / "expected.yaml")])
    assert result.exit_code == 0, result.output
    assert "invalid" not in result.output


@pytest.mark.parametrize("case", CASES)
def test_converted_rollout_simulates_to_healthy(case: str) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            str(FIXTURES / case / "expected.yaml"),
            "--scenario",
            "healthy",
            "--promote",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Result: Healthy" in result.output
    # its own templates were measured on the simulated traffic, not scripted, and every query
    # was one the simulator reads (else a metric could pass only by never being judged)
    assert "Scenario healthy: 0 analysis" not in result.output
    assert "analysis template(s)" in result.output
    assert "cannot evaluate" not in result.output
