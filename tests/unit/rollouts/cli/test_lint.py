"""``sluice lint``: the controller's messages for bad files, one verdict per document, exit codes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from rollouts.cli.lint import lint_texts
from rollouts.cli.main import cli
from tests.support.rollouts import rollout_doc

TEMPLATE: dict[str, Any] = {
    "apiVersion": "sluice.dev/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "error-rate"},
    "spec": {
        "args": [{"name": "app"}],
        "metrics": [
            {
                "name": "errors",
                "kind": "counts",
                "interval": "30s",
                "provider": {
                    "prometheus": {
                        "canary": {
                            "events": "sum(increase(errors{app={{args.app}}}[{{window}}]))",
                            "total": "sum(increase(requests{app={{args.app}}}[{{window}}]))",
                        },
                        "baseline": {
                            "events": "sum(increase(errors{app={{args.app}}}[{{window}}]))",
                            "total": "sum(increase(requests{app={{args.app}}}[{{window}}]))",
                        },
                    }
                },
                "compare": {"direction": "increase", "tolerance": 1.25},
            }
        ],
    },
}


def rollout(**changes: Any) -> dict[str, Any]:
    doc = rollout_doc(steps=[{"setWeight": 25}, {"pause": {}}])
    doc["metadata"].pop("generation")
    doc.update(changes)
    return doc


def with_analysis(doc: dict[str, Any], name: str, cluster: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"templateName": name}
    if cluster:
        ref["clusterScope"] = True
    doc["spec"]["strategy"]["canary"]["steps"].append({"analysis": {"templates": [ref]}})
    return doc


def dump(*docs: Any) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def invoke(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["lint", *args], input=stdin)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- valid files


def test_valid_rollout_and_template_in_one_file_pass_with_exit_0(tmp_path: Path) -> None:
    path = write(tmp_path, "ok.yaml", dump(with_analysis(rollout(), "error-rate"), TEMPLATE))
    result = invoke(path)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{path}: Rollout/web: ok",
        f"{path}: AnalysisTemplate/error-rate: ok",
    ]


def test_templates_in_another_file_satisfy_the_reference(tmp_path: Path) -> None:
    r = write(tmp_path, "r.yaml", dump(with_analysis(rollout(), "error-rate")))
    t = write(tmp_path, "t.yaml", dump(TEMPLATE))
    result = invoke(r, t, "--strict")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


# --------------------------------------------------------------------------- rollout problems


def problems_of(doc: Any) -> list[str]:
    [finding] = lint_texts([("f.yaml", dump(doc))])
    assert not finding.ok
    return finding.problems


def test_weight_over_100_names_the_step() -> None:
    doc = rollout()
    doc["spec"]["strategy"]["canary"]["steps"][0] = {"setWeight": 150}
    assert problems_of(doc) == [
        "spec.strategy.canary.steps[0].setWeight: must be between 0 and 100"
    ]


def test_both_strategies_is_one_problem_naming_both() -> None:
    doc = rollout()
    doc["spec"]["strategy"]["blueGreen"] = {"activeService": "a", "previewService": "b"}
    [problem] = problems_of(doc)
    assert problem.startswith("spec.strategy: must set exactly one of canary, blueGreen")
    assert "got canary, blueGreen" in problem


def test_unknown_field_is_named() -> None:
    doc = rollout()
    doc["spec"]["replicaz"] = 3
    assert problems_of(doc) == ["spec.replicaz: is not a known field"]


def test_missing_template_name_in_an_analysis_step() -> None:
    doc = rollout()
    doc["spec"]["strategy"]["canary"]["steps"].append({"analysis": {"templates": [{}]}})
    assert problems_of(doc) == [
        "spec.strategy.canary.steps[2].analysis.templates[0].templateName: is required"
    ]


def test_messages_are_the_controllers_own() -> None:
    """The same text the Rollout's InvalidSpec condition shows: parse_rollout's problems."""
    from rollouts.api.validation import InvalidSpec, parse_rollout

    doc = rollout()
    doc["spec"]["strategy"]["canary"]["steps"][0] = {"setWeight": -1, "pause": {}}
    with pytest.raises(InvalidSpec) as raised:
        parse_rollout(doc)
    assert problems_of(doc) == raised.value.problems


# --------------------------------------------------------------------------- template problems


def test_placeholder_of_an_undeclared_arg_names_the_query() -> None:
    doc = copy.deepcopy(TEMPLATE)
    canary = doc["spec"]["metrics"][0]["provider"]["prometheus"]["canary"]
    canary["events"] = "sum(increase(errors{app={{args.nope}}}[{{window}}]))"
    [problem] = problems_of(doc)
    assert problem.startswith("spec.metrics[0].provider.prometheus.canary.events: ")
    assert "nope" in problem


def test_placeholder_inside_a_quoted_string_is_refused() -> None:
    doc = copy.deepcopy(TEMPLATE)
    canary = doc["spec"]["metrics"][0]["provider"]["prometheus"]["canary"]
    canary["total"] = 'sum(increase(requests{app="{{args.app}}"}[{{window}}]))'
    [problem] = problems_of(doc)
    assert problem.startswith("spec.metrics[0].provider.prometheus.canary.total: ")


def test_cluster_template_is_checked_too() -> None:
    doc = copy.deepcopy(TEMPLATE)
    doc["kind"] = "ClusterAnalysisTemplate"
    del doc["spec"]["metrics"][0]["name"]
    assert problems_of(doc) == ["spec.metrics[0].name: is required"]


# --------------------------------------------------------------------------- other documents


def test_an_unknown_sluice_kind_is_a_problem(tmp_path: Path) -> None:
    typo = {"apiVersion": "sluice.dev/v1alpha1", "kind": "Rolout", "metadata": {"name": "web"}}
    path = write(tmp_path, "typo.yaml", dump(rollout(), typo))
    result = invoke(path)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{path}: Rollout/web: ok",
        f"{path}: Rolout/web: invalid",
        "  kind 'Rolout' is not a kind lint checks (Rollout, AnalysisTemplate, "
        "ClusterAnalysisTemplate)",
    ]


def test_other_api_groups_are_skipped_not_judged(tmp_path: Path) -> None:
    """A Rollout file usually carries its Services; lint must pass on it."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}
    path = write(tmp_path, "svc.yaml", dump(rollout(), svc))
    result = invoke(path)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{path}: Rollout/web: ok",
        f"{path}: Service/web: skipped (not a Sluice kind)",
    ]


def test_a_document_that_is_not_a_mapping() -> None:
    [finding] = lint_texts([("f.yaml", "- just\n- a list\n")])
    assert finding.source == "f.yaml: (no kind)/(document 1)"
    assert finding.problems == ["document 1 is not a mapping (got list)"]


def test_yaml_syntax_error_is_one_line_with_the_line_number(tmp_path: Path) -> None:
    text = "kind: Rollout\nmetadata:\n  name: web\n  labels: {a: b\nspec: {}\n"
    path = write(tmp_path, "broken.yaml", text)
    result = invoke(path)
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith(f"{path}:5: not valid YAML: ")
    assert "Traceback" not in result.output


def test_each_invalid_document_is_reported_and_the_others_still_checked(tmp_path: Path) -> None:
    bad = rollout()
    bad["metadata"]["name"] = "bad"
    bad["spec"]["strategy"]["canary"]["steps"][0] = {"setWeight": 101}
    path = write(tmp_path, "two.yaml", dump(bad, rollout()))
    result = invoke(path)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{path}: Rollout/bad: invalid",
        "  spec.strategy.canary.steps[0].setWeight: must be between 0 and 100",
        f"{path}: Rollout/web: ok",
    ]


# --------------------------------------------------------------------------- references


def test_undefined_template_is_a_warning_by_default_and_an_error_with_strict(
    tmp_path: Path,
) -> None:
    doc = with_analysis(rollout(), "latency", cluster=True)
    path = write(tmp_path, "r.yaml", dump(doc, TEMPLATE))
    note = (
        "spec.strategy.canary.steps[2].analysis.templates[0].templateName: "
        "ClusterAnalysisTemplate 'latency' is not defined in the given files"
    )

    relaxed = invoke(path)
    assert relaxed.exit_code == 0, relaxed.output
    assert relaxed.output.splitlines()[:2] == [
        f"{path}: Rollout/web: ok (1 warning)",
        f"  warning: {note}",
    ]

    strict = invoke(path, "--strict")
    assert strict.exit_code == 1
    assert strict.output.splitlines()[:2] == [f"{path}: Rollout/web: invalid", f"  {note}"]


def test_a_namespaced_template_does_not_satisfy_a_cluster_scoped_reference() -> None:
    doc = with_analysis(rollout(), "error-rate", cluster=True)
    findings = lint_texts([("f.yaml", dump(doc, TEMPLATE))], strict=True)
    assert [f.ok for f in findings] == [False, True]


def test_background_and_blue_green_references_are_checked() -> None:
    canary = rollout()
    canary["spec"]["strategy"]["canary"]["analysis"] = {"templates": [{"templateName": "bg"}]}
    blue = rollout_doc(
        blue_green={
            "prePromotionAnalysis": {"templates": [{"templateName": "pre"}]},
            "postPromotionAnalysis": {"templates": [{"templateName": "error-rate"}]},
        }
    )
    blue["metadata"]["name"] = "blue"
    findings = lint_texts([("f.yaml", dump(canary, blue, TEMPLATE))])
    assert [w.split(":")[0] for f in findings for w in f.warnings] == [
        "spec.strategy.canary.analysis.templates[0].templateName",
        "spec.strategy.blueGreen.prePromotionAnalysis.templates[0].templateName",
    ]


# --------------------------------------------------------------------------- files and exit codes


def test_stdin(tmp_path: Path) -> None:
    result = invoke("-", stdin=dump(rollout()))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["<stdin>: Rollout/web: ok"]


def test_missing_file_exits_2_after_checking_the_others(tmp_path: Path) -> None:
    ok = write(tmp_path, "ok.yaml", dump(rollout()))
    missing = str(tmp_path / "missing.yaml")
    result = invoke(ok, missing)
    assert result.exit_code == 2
    assert f"{ok}: Rollout/web: ok" in result.output
    assert f"Error: {missing}: cannot read: No such file or directory" in result.output
    assert "Traceback" not in result.output


def test_no_file_is_a_usage_error() -> None:
    assert invoke().exit_code == 2


def test_an_empty_file_is_one_line_and_an_error(tmp_path: Path) -> None:
    """Nothing was checked, so lint must not say "ok" (helm rendering nothing, a wrong glob)."""
    path = write(tmp_path, "empty.yaml", "# nothing rendered\n")
    for result in (invoke(path), invoke(path, "--strict")):
        assert result.exit_code == 1
        assert result.output.splitlines() == [f"{path}: no YAML documents: nothing to check"]


def test_a_canary_with_no_steps_is_a_warning(tmp_path: Path) -> None:
    doc = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": {"stableService": "web", "canaryService": "web-canary"}},
        },
    }
    path = write(tmp_path, "nosteps.yaml", yaml.safe_dump(doc))
    result = invoke(path)
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        f"{path}: Rollout/web: ok (1 warning)",
        "  warning: spec.strategy.canary.steps: no steps: every new revision goes straight to "
        "100% with no pause and no analysis step",
    ]


def test_the_shipped_examples_are_valid() -> None:
    """Every Rollout and template under deploy/examples passes (other kinds skipped)."""
    root = Path(__file__).resolve().parents[4] / "deploy" / "examples"
    files = sorted(str(p) for p in root.rglob("*.yaml"))
    assert files
    result = invoke(*files)
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok") >= len(files)


# --------------------------------------------------------------------------- the error budget


def alpha_template(name: str, metric: str, alpha: float | None) -> dict[str, Any]:
    t = copy.deepcopy(TEMPLATE)
    t["metadata"]["name"] = name
    m = t["spec"]["metrics"][0]
    m["name"] = metric
    if alpha is not None:
        m["compare"]["alpha"] = alpha
    return t


def test_explicit_alphas_over_the_budget_name_the_field() -> None:
    doc = with_analysis(with_analysis(rollout(), "a"), "b")
    a, b = alpha_template("a", "errors", 0.05), alpha_template("b", "latency", 0.04)
    findings = lint_texts([("f.yaml", dump(doc, a, b))])
    assert [f.ok for f in findings] == [False, True, True]
    assert findings[0].problems == [
        "template b: spec.metrics[0].compare.alpha: 0.04 brings the explicit alphas to 0.09, "
        "over the rollout's alpha 0.05"
    ]


def test_a_metric_left_without_alpha_is_a_problem_naming_it() -> None:
    doc = with_analysis(with_analysis(rollout(), "a"), "b")
    a, b = alpha_template("a", "errors", 0.05), alpha_template("b", "latency", None)
    [finding, *_] = lint_texts([("f.yaml", dump(doc, a, b))])
    assert finding.problems == [
        "template b: spec.metrics[0].compare.alpha: not set, and no alpha is left for it: "
        "explicit alphas already spend the rollout's alpha 0.05"
    ]


def test_alphas_within_the_budget_pass() -> None:
    doc = with_analysis(with_analysis(rollout(), "a"), "b")
    a, b = alpha_template("a", "errors", 0.03), alpha_template("b", "latency", None)
    assert all(f.ok for f in lint_texts([("f.yaml", dump(doc, a, b))]))
