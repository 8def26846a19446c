"""``sluice simulate --prometheus URL --serve-metrics ADDR`` end to end on the wall clock: the
simulator serves its traffic on /metrics, a real Prometheus scrapes it every second, and the
Rollout's analysis step, measured by the template's PromQL over the scraped samples, aborts an
error regression. The slowest test in the suite (~25 s): it is the one path with no shortcut
(scrape timing, labels Prometheus adds, ``increase()`` over samples wherever scrapes land)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rollouts.cli.main import cli
from tests.support.prometheus import free_port, start_prometheus

pytestmark = pytest.mark.integration

ERRORS = 'sum(increase(http_requests_total{namespace={{args.namespace}}, service=%s, code=~"5.."}[{{window}}])) or vector(0)'
TOTAL = "sum(increase(http_requests_total{namespace={{args.namespace}}, service=%s}[{{window}}]))"


def documents() -> list[dict[str, object]]:
    arm = {
        svc: {
            "events": ERRORS % f"{{{{args.{svc}-service}}}}",
            "total": TOTAL % f"{{{{args.{svc}-service}}}}",
        }
        for svc in ("canary", "stable")
    }
    template = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "errors", "namespace": "shop"},
        "spec": {
            "metrics": [
                {
                    "name": "error-rate",
                    "kind": "counts",
                    "interval": "5s",
                    "initialDelay": "5s",  # the first scrapes are queryable only after ~5 s
                    "count": 12,
                    "provider": {
                        "prometheus": {"canary": arm["canary"], "baseline": arm["stable"]}
                    },
                    "compare": {"tolerance": 1.25},
                }
            ]
        },
    }
    rollout = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example/web:1"}]},
            },
            "strategy": {
                "canary": {
                    "stableService": "web",
                    "canaryService": "web-canary",
                    "trafficRouting": {"istio": {"virtualService": {"name": "web"}}},
                    "abortScaleDownDelaySeconds": 0,  # live time is real time
                    "steps": [
                        {"setWeight": 50},
                        {"analysis": {"templates": [{"templateName": "errors"}]}},
                        {"setWeight": 100},
                    ],
                }
            },
        },
    }
    return [rollout, template]


def test_scraped_error_regression_aborts_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump_all(documents()))
    port = free_port()
    with start_prometheus(
        tmp_path / "prometheus", scrape_targets=[f"127.0.0.1:{port}"], scrape_interval="1s"
    ) as server:
        started = time.time()
        result = CliRunner().invoke(
            cli,
            [
                "simulate",
                str(path),
                "--scenario",
                "error-regression",
                "--prometheus",
                server.url,
                "--serve-metrics",
                f"127.0.0.1:{port}",
                "--ready-delay",
                "1",
            ],
        )
        elapsed = time.time() - started
        # over a range: once the simulator stops, the next failed scrape marks the series stale
        scraped = server.query(
            'count(count_over_time(http_requests_total{service="web-canary"}[10m]))', time.time()
        )
    print(f"live simulate: exit {result.exit_code} after {elapsed:.1f} s\n{result.output}")
    assert scraped, "Prometheus scraped the simulator's /metrics"
    assert result.exit_code == 1, result.output
    assert "Result: Degraded" in result.output
    assert "step 2 analysis" in result.output and "metric 'error-rate' failed" in result.output
    assert "Promoted" not in result.output


def test_serve_metrics_needs_prometheus(tmp_path: Path) -> None:
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump_all(documents()))
    result = CliRunner().invoke(
        cli, ["simulate", str(path), "--scenario", "healthy", "--serve-metrics", "127.0.0.1:0"]
    )
    assert result.exit_code == 2
    assert "--serve-metrics needs --prometheus" in result.output
