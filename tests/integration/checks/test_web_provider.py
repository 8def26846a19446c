"""The web metric provider against a real HTTP server: numbers out of JSON answers, and every
kind of broken answer an Error measurement (never a pass), judged through a real run."""

from __future__ import annotations

import time
from typing import Any

import pytest

from analysis.api import MetricResult, WebSpec, parse_template
from analysis.lifecycle import Analysis, RunLifecycle, RunRequest, TemplateRef
from analysis.providers import web
from analysis.providers.port import MetricProvider, ProviderError, Queries, Unavailable
from analysis.run_loop import MetricReport
from analysis.store.memory import MemoryAnalysisStore
from analysis.store.port import RunOwner, SecretNotFound
from tests.support.http_server import HttpServer
from tests.support.patience import patience

NOTHING = Queries()


def spec(**fields: Any) -> WebSpec:
    return WebSpec.model_validate(fields)


def fetch(s: WebSpec) -> float:
    provider = web.build(s, "ns", MemoryAnalysisStore())
    assert isinstance(provider, web.WebProvider)
    try:
        return provider.fetch()
    finally:
        provider.close()


def test_get_reads_the_number_at_the_json_path(server: HttpServer) -> None:
    server.route("/smoke", body={"checks": {"passed": 12, "failed": 0}, "ok": True})
    assert fetch(spec(url=server.url("/smoke"), jsonPath="$.checks.failed")) == 0.0
    assert fetch(spec(url=server.url("/smoke"), jsonPath="$.checks.passed")) == 12.0
    assert fetch(spec(url=server.url("/smoke"), jsonPath="$.ok")) == 1.0


def test_post_sends_the_body_and_headers_including_one_from_a_secret(server: HttpServer) -> None:
    server.route("/run", body="0.25")
    store = MemoryAnalysisStore()
    store.secrets[("ns", "smoke")] = {"token": "s3cret"}
    s = spec(
        url=server.url("/run"),
        method="POST",
        body='{"suite": "conformance"}',
        headers=[
            {"name": "X-Team", "value": "payments"},
            {
                "name": "Authorization",
                "valueFrom": {"secretKeyRef": {"name": "smoke", "key": "token"}},
            },
        ],
    )
    provider = web.build(s, "ns", store)
    assert isinstance(provider, web.WebProvider)
    assert provider.measure("value", "absolute", NOTHING, 0, 1).value == 0.25  # type: ignore[union-attr]
    got = server.requests("/run")[-1]
    assert got.method == "POST"
    assert got.json() == {"suite": "conformance"}
    assert got.headers["X-Team"] == "payments"
    assert got.headers["Authorization"] == "s3cret"


def test_a_missing_secret_names_it(server: HttpServer) -> None:
    s = spec(
        url=server.url("/run"),
        headers=[
            {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "t"}}}
        ],
    )
    with pytest.raises(SecretNotFound, match="gone"):
        web.build(s, "ns", MemoryAnalysisStore())


def test_a_secret_value_that_would_inject_a_header_is_refused(server: HttpServer) -> None:
    store = MemoryAnalysisStore()
    store.secrets[("ns", "bad")] = {"t": "x\r\nX-Evil: 1"}
    s = spec(
        url=server.url("/run"),
        headers=[
            {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "bad", "key": "t"}}}
        ],
    )
    provider = web.build(s, "ns", store)
    assert isinstance(provider, Unavailable)
    assert "CR, LF or NUL" in provider.message


@pytest.mark.parametrize(
    ("answer", "json_path", "expected"),
    [
        ({"status": 500, "body": {"failed": 0}}, "$.failed", "HTTP 500"),
        ({"status": 404, "body": "nope"}, "$.failed", "HTTP 404"),
        ({"body": b"{not json"}, "$.failed", "not JSON"),
        ({"body": {"passed": 3}}, "$.failed", "matches nothing"),
        ({"body": {"items": [1, 2]}}, "$.items[*]", "matches 2 values"),
        ({"body": {"failed": "many"}}, "$.failed", "not a number"),
        ({"body": {"failed": {"n": 1}}}, "$.failed", "not a number or boolean"),
        ({"body": {"failed": None}}, "$.failed", "not a number or boolean"),
        ({"status": 302, "body": "", "headers": {"Location": "/elsewhere"}}, "$.x", "HTTP 302"),
    ],
)
def test_broken_answers_are_errors_never_numbers(
    server: HttpServer, answer: dict[str, Any], json_path: str, expected: str
) -> None:
    server.route("/check", **answer)
    with pytest.raises(ProviderError, match=expected):
        fetch(spec(url=server.url("/check"), jsonPath=json_path))


def test_a_hanging_endpoint_is_an_error_after_the_timeout(server: HttpServer) -> None:
    server.route("/hang", hang=True)
    began = time.monotonic()
    with pytest.raises(ProviderError, match="no answer within 1s"):
        fetch(spec(url=server.url("/hang"), timeout="1s", jsonPath="$.x"))
    assert time.monotonic() - began < patience(3)


def test_a_slow_endpoint_within_the_timeout_is_read(server: HttpServer) -> None:
    server.route("/slow", body={"x": 7}, delay=0.3)
    assert fetch(spec(url=server.url("/slow"), timeout="5s", jsonPath="$.x")) == 7.0


def test_a_refused_connection_is_an_error() -> None:
    with HttpServer() as gone:
        url = gone.url("/check")
    with pytest.raises(ProviderError, match="ConnectionError"):
        fetch(spec(url=url, jsonPath="$.x"))


# ------------------------------------------------------------------------------ judged in a run


def _template(url: str, **threshold: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "smoke", "namespace": "ns"},
        "spec": {
            "args": [{"name": "suite"}],
            "metrics": [
                {
                    "name": "smoke",
                    "kind": "value",
                    "interval": "10s",
                    "count": 2,
                    "provider": {"web": {"url": url, "jsonPath": "$.failed", "timeout": "2s"}},
                    "threshold": {"max": 0, **threshold},
                }
            ],
        },
    }


def _result(report: MetricReport) -> MetricResult:
    return MetricResult(name=report.name, phase=report.phase, errors=report.tally.errors)


def _run(server: HttpServer, answers: list[dict[str, Any]], **threshold: Any) -> tuple[str, str]:
    store = MemoryAnalysisStore()
    store.add_template(parse_template(_template(server.url("/suites/{{args.suite}}"), **threshold)))
    now = [1_000_000.0]

    def prometheus(*_: Any) -> MetricProvider:
        raise AssertionError("a web metric never asks for Prometheus")

    runs = RunLifecycle(store, prometheus, lambda: now[0], result_of=_result)
    request = RunRequest(
        owner=RunOwner("ns", "web", "uid"),
        name="web-r2-step1",
        revision="r2",
        attempt=1,
        kind="step",
        step_index=0,
        analysis=Analysis((TemplateRef("smoke"),), args={"suite": "a/b?c"}),
        budget=(),
        builtins={},
    )
    run = runs.create(request)
    assert run.spec.metrics[0].provider.web is not None
    assert run.spec.metrics[0].provider.web.url == server.url("/suites/a%2Fb%3Fc")
    for answer in answers:
        server.route("/suites/a%2Fb%3Fc", **answer)
        now[0] += 10
        run = runs.tick(run)
    assert run.status is not None
    return run.status.phase, run.status.message


def test_a_passing_smoke_test_succeeds_after_count_measurements(server: HttpServer) -> None:
    phase, _ = _run(server, [{"body": {"failed": 0}}] * 2)
    assert phase == "Successful"


def test_a_failing_smoke_test_fails_the_run(server: HttpServer) -> None:
    phase, message = _run(server, [{"body": {"failed": 3}}])
    assert phase == "Failed"
    assert "smoke" in message


def test_an_endpoint_that_keeps_erring_ends_the_run_in_error_never_success(
    server: HttpServer,
) -> None:
    phase, message = _run(server, [{"status": 500, "body": "down"}] * 3, consecutiveErrorLimit=2)
    assert phase == "Error"
    assert "HTTP 500" in message
