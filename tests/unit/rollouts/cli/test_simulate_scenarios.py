"""``sluice simulate --scenario``: the example canary with analysis aborts on a regression with the
failing metric and its evidence in status, and promotes a healthy canary (fixed seeds)."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from rollouts.cli.main import cli
from rollouts.cli.simulate import load_rollout, load_templates
from rollouts.simulator.simulation import SimOptions, Simulation
from simulations.simulated_provider import SCENARIOS

EXAMPLE = Path(__file__).parents[4] / "deploy" / "examples" / "canary-analysis.yaml"


def simulate(scenario: str) -> Simulation:
    opts = SimOptions(scenario=SCENARIOS[scenario], templates=tuple(load_templates([EXAMPLE])))
    sim = Simulation(load_rollout(EXAMPLE), opts)
    sim.run()
    return sim


def test_error_regression_aborts_at_the_first_analysis_step_naming_the_metric() -> None:
    st = simulate("error-regression").rollout.status
    assert st is not None and st.phase == "Degraded"
    assert st.abort is not None and "step 2 analysis" in st.abort.message
    assert "metric 'error-rate' failed" in st.message
    run = st.analysis_runs[0]
    assert run.step_index == 1 and run.phase == "Failed"
    errors = next(m for m in run.metrics if m.name == "error-rate")
    ev = errors.evidence
    assert ev is not None and ev.outcome == "reject"
    assert ev.estimate is not None and ev.estimate > 2
    assert ev.log_e_value is not None and ev.log_threshold is not None
    assert ev.log_e_value >= ev.log_threshold and ev.events > 0
    assert st.abort.metric == "error-rate"  # the status names the metric, no message parsing
    assert len(st.analysis_runs) == 1  # never reached the second analysis step


def test_healthy_ends_healthy_and_the_second_step_inherits_the_evidence() -> None:
    sim = simulate("healthy")
    st = sim.rollout.status
    assert st is not None and st.phase == "Healthy"
    assert [r.phase for r in st.analysis_runs] == ["Successful", "Successful"]
    first, second = (next(m for m in r.metrics if m.name == "error-rate")
                     for r in st.analysis_runs)
    assert first.evidence is not None and second.evidence is not None
    assert second.evidence.events > first.evidence.events  # one e-process for the whole rollout


def test_cli_prints_each_tick_and_the_decision(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["simulate", str(EXAMPLE), "--scenario", "latency-regression"])
    assert r.exit_code == 1, r.output
    assert "~ analysis web-" in r.output and "e-value" in r.output
    assert "metric 'latency' failed" in r.output


def test_low_traffic_pauses_with_insufficient_evidence() -> None:
    r = CliRunner().invoke(cli, ["simulate", str(EXAMPLE), "--scenario", "low-traffic", "--quiet"])
    assert r.exit_code == 2, r.output
    assert "Paused" in r.output and "insufficient evidence" in r.output


def test_scenario_file_and_templates_dir(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    rollout = tmp_path / "rollout.yaml"
    rollout.write_text(yaml.safe_dump(docs[0]))
    tdir = tmp_path / "templates"
    tdir.mkdir()
    for d in docs[1:]:
        (tdir / f"{d['metadata']['name']}.yaml").write_text(yaml.safe_dump(d))
    scen = tmp_path / "scenario.yaml"
    scen.write_text("totalRps: 400\neffect: {errorRatio: 8}\n")
    r = CliRunner().invoke(cli, ["simulate", str(rollout), "--scenario-file", str(scen),
                                 "--templates", str(tdir), "--quiet"])
    assert r.exit_code == 1, r.output
    assert "metric 'error-rate' failed" in r.output


def test_missing_template_is_an_error_verdict_naming_it(tmp_path: Path) -> None:
    doc = next(yaml.safe_load_all(EXAMPLE.read_text()))
    f = tmp_path / "r.yaml"
    f.write_text(yaml.safe_dump(doc))  # the Rollout alone: its templates are nowhere
    r = CliRunner().invoke(cli, ["simulate", str(f), "--scenario", "healthy", "--quiet"])
    assert r.exit_code == 1, r.output
    assert "AnalysisTemplate demo/request-errors not found" in r.output


def test_example_templates_are_valid_and_judge_the_simulated_traffic() -> None:
    """Every example template parses, and runs through a healthy canary without an Error."""
    tdir = EXAMPLE.parent / "templates"
    templates = load_templates([tdir])
    assert {t["metadata"]["name"] for t in templates} >= {
        "http-error-rate", "istio-error-rate", "http-latency"}
    doc = next(yaml.safe_load_all(EXAMPLE.read_text()))
    doc["spec"]["strategy"]["canary"]["steps"] = [
        {"setWeight": 20},
        {"analysis": {"templates": [{"templateName": "http-error-rate"},
                                    {"templateName": "http-latency"}]}},
    ]
    from rollouts.api.validation import parse_rollout

    opts = SimOptions(scenario=SCENARIOS["healthy"], templates=tuple(templates))
    sim = Simulation(parse_rollout(doc), opts)
    sim.run()
    st = sim.rollout.status
    assert st is not None and st.phase == "Healthy", st.message
    p99 = next(m for m in st.analysis_runs[0].metrics if m.name == "p99")
    assert p99.dry_run and p99.evidence is not None and p99.evidence.estimate is not None
