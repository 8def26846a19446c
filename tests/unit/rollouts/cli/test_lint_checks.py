"""``sluice lint`` on web checks and gates: the shipped example passes, bad fields are named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from rollouts.cli.main import cli
from tests.support.rollouts import rollout_doc

EXAMPLES = Path(__file__).parents[4] / "deploy" / "examples"


def lint(tmp_path: Path, *docs: Any) -> Result:
    path = tmp_path / "doc.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return CliRunner().invoke(cli, ["lint", str(path)])


def web_template(web: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "smoke"},
        "spec": {
            "metrics": [
                {
                    "name": "smoke",
                    "kind": "value",
                    "provider": {"web": web},
                    "threshold": {"max": 0},
                }
            ]
        },
    }


def test_the_checks_example_and_its_template_pass() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "lint",
            str(EXAMPLES / "canary-checks.yaml"),
            str(EXAMPLES / "templates" / "web-smoke.yaml"),
            str(EXAMPLES / "templates" / "error-rate.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output


def test_a_url_arg_in_the_port_is_named(tmp_path: Path) -> None:
    result = lint(tmp_path, web_template({"url": "http://x:{{args.rollout}}/"}))
    assert result.exit_code == 1
    assert "spec.metrics[0].provider.web.url" in result.output
    assert "in the URL's port, which takes no argument" in result.output


def test_a_body_on_get_is_named(tmp_path: Path) -> None:
    result = lint(tmp_path, web_template({"url": "http://x/", "body": "{}"}))
    assert result.exit_code == 1
    assert "spec.metrics[0].provider.web.body: needs method POST (got GET)" in result.output


def test_a_gate_timeout_over_ten_seconds_is_named(tmp_path: Path) -> None:
    doc = rollout_doc(steps=[{"gate": {"url": "http://gate/", "timeout": "30s"}}])
    doc["metadata"].pop("generation")
    result = lint(tmp_path, doc)
    assert result.exit_code == 1
    assert "spec.strategy.canary.steps[0].gate.timeout: must be between 1s and 10s (got 30s)" in (
        result.output
    ), result.output


def test_a_gate_with_a_bad_url_is_named(tmp_path: Path) -> None:
    doc = rollout_doc(blue_green={"prePromotionGate": {"url": "gate.local/open"}})
    doc["metadata"].pop("generation")
    result = lint(tmp_path, doc)
    assert result.exit_code == 1
    assert "spec.strategy.blueGreen.prePromotionGate.url" in result.output, result.output
