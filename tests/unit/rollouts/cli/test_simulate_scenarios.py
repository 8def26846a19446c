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


def test_low_traffic_names_only_the_metric_that_lacks_evidence() -> None:
    """The step is inconclusive on 'error-rate' (critical, no canary errors to count); 'latency'
    (not critical) must not borrow that reason and claim 'error-rate' is its own problem."""
    st = simulate("low-traffic").rollout.status
    assert st is not None and st.phase == "Paused"
    run = st.analysis_runs[0]
    assert run.phase == "Inconclusive"
    errors, latency = run.message.split("; metric 'latency': ")
    assert errors.startswith("metric 'error-rate': insufficient evidence: step reached its ")
    assert "without showing 'error-rate' within tolerance" in errors
    assert latency.startswith("no verdict of its own; the step is inconclusive on 'error-rate'")
    assert "without showing" not in latency


def test_each_message_is_printed_once() -> None:
    """An abort's verdict travels into the event, status, run, history and summary; the text
    output shows it once and refers back to it."""
    r = CliRunner().invoke(cli, ["simulate", str(EXAMPLE), "--scenario", "error-regression"])
    assert r.exit_code == 1, r.output
    verdict = "metric 'error-rate' failed: estimate"
    assert r.output.count(verdict) == 1, r.output
    assert "! RolloutAborted: AnalysisFailed: step 2 analysis web-" in r.output
    assert "  aborted: AnalysisFailed (message above)" in r.output
    quiet = CliRunner().invoke(
        cli, ["simulate", str(EXAMPLE), "--scenario", "error-regression", "--quiet"]
    )
    assert quiet.output.count(verdict) == 1  # the summary says it when nothing else did
    assert "  aborted: AnalysisFailed: step 2 analysis" in quiet.output


def test_steps_and_runs_are_numbered_from_one() -> None:
    """Step 2 is the first analysis step: its run is -step2, and the status line says 2/4."""
    r = CliRunner().invoke(cli, ["simulate", str(EXAMPLE), "--scenario", "error-regression"])
    assert "started step analysis web-a36705d0c3-step2" in r.output, r.output
    assert "Degraded    step 2/4     canary   0%" in r.output
    # the stable first revision shows no step: nothing rolls out through the steps
    assert "Healthy     step -       canary   0%" in r.output
    assert "step 4/4" not in r.output.split("RolloutStarted")[0]
