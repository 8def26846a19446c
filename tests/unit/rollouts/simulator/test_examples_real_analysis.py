"""Every example Rollout, judged by its real analysis templates on simulated traffic.

Scripted verdicts (the default of ``sluice simulate``) pass whatever template a Rollout names, so an
example naming a template nobody ships looks fine until someone tries it on a cluster. Here every
example runs through ``--scenario healthy`` (it must promote) and ``--scenario error-regression``
(it must abort, when it has analysis at all) with the templates in deploy/examples/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from rollouts.cli.lint import analysis_refs
from rollouts.cli.main import cli
from rollouts.cli.simulate import load_rollout, load_templates

EXAMPLES = Path(__file__).parents[4] / "deploy" / "examples"
TEMPLATES = EXAMPLES / "templates"
ROLLOUT_EXAMPLES = sorted(
    p.name for p in EXAMPLES.glob("*.yaml") if "kind: Rollout" in p.read_text()
)


def referenced(example: str) -> set[str]:
    return {name for _, name, _ in analysis_refs(load_rollout(EXAMPLES / example))}


def simulate(example: str, scenario: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            str(EXAMPLES / example),
            "--templates",
            str(TEMPLATES),
            "--scenario",
            scenario,
            "--promote",  # getting-started waits for a person once
            "--quiet",
        ],
    )
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def test_some_examples_are_judged_by_analysis() -> None:
    judged = [e for e in ROLLOUT_EXAMPLES if referenced(e)]
    assert {"bluegreen.yaml", "canary-istio.yaml", "canary-analysis.yaml"} <= set(judged)


@pytest.mark.parametrize("example", ROLLOUT_EXAMPLES)
def test_every_template_an_example_names_is_shipped(example: str) -> None:
    shipped = {
        d["metadata"]["name"] for d in load_templates([EXAMPLES / example, TEMPLATES])
    }
    assert referenced(example) <= shipped, referenced(example) - shipped


@pytest.mark.parametrize("example", ROLLOUT_EXAMPLES)
def test_healthy_traffic_promotes(example: str) -> None:
    code, out = simulate(example, "healthy")
    assert code == 0, out
    assert "Result: Healthy" in out
    for name in referenced(example):
        assert f"{name} not found" not in out


@pytest.mark.parametrize("example", ROLLOUT_EXAMPLES)
def test_an_error_regression_aborts_where_there_is_analysis(example: str) -> None:
    code, out = simulate(example, "error-regression")
    if not referenced(example):
        # nothing judges the traffic: the rollout promotes, and simulate says why
        assert code == 0 and "Result: Healthy" in out, out
        assert "runs no analysis" in out
        return
    assert code == 1, out
    assert "Result: Degraded" in out and "AnalysisFailed" in out
    assert "not found" not in out  # aborted by a metric, not by a missing template
