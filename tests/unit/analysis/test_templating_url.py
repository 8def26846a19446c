"""URL, header and body templates of web metrics: a value can never change the request's
structure (host, path segments, query parameters, header lines, JSON shape)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis import templating
from analysis.api import InvalidAnalysisSpec, parse_template

URL = (
    "http://{{args.svc}}.{{args.ns}}:8080/api/{{args.rev}}/check?name={{args.rev}}&x=1#{{args.rev}}"
)
DNS = st.from_regex(r"\A[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?\Z")


@given(svc=DNS, ns=DNS, rev=st.text())
def test_no_value_changes_the_urls_structure(svc: str, ns: str, rev: str) -> None:
    url = templating.render_url(URL, {"svc": svc, "ns": ns, "rev": rev})
    parts = urlsplit(url)
    assert parts.scheme == "http"
    assert parts.hostname == f"{svc}.{ns}".lower()
    assert parts.port == 8080
    segments = parts.path.split("/")
    assert segments[:3] == ["", "api", segments[2]] and segments[3:] == ["check"]
    assert unquote(segments[2]) == rev
    query = parse_qsl(parts.query, keep_blank_values=True)
    assert [k for k, _ in query] == ["name", "x"]
    assert query[0][1] == rev
    assert unquote(parts.fragment) == rev


@given(value=st.text())
def test_a_host_value_that_is_no_dns_name_is_refused(value: str) -> None:
    url = "http://{{args.svc}}/check"
    try:
        rendered = templating.render_url(url, {"svc": value})
    except templating.TemplateError as e:
        assert "not a DNS name" in str(e)
    else:
        assert urlsplit(rendered).hostname == value.lower()
        assert urlsplit(rendered).path == "/check"


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("{{args.scheme}}://example.com/", "scheme"),
        ("http://example.com:{{args.port}}/", "port"),
    ],
)
def test_placeholders_in_scheme_or_port_are_refused(url: str, part: str) -> None:
    with pytest.raises(templating.TemplateError, match=f"in the URL's {part}"):
        templating.check_url(url, {"scheme", "port"})


def test_a_window_placeholder_has_no_place_in_a_url() -> None:
    with pytest.raises(templating.TemplateError, match="a URL has no window"):
        templating.check_url("http://x/{{window}}", set())


@given(value=st.text())
def test_a_header_value_never_adds_a_header_line(value: str) -> None:
    try:
        rendered = templating.render_header("Bearer {{args.t}}", {"t": value})
    except templating.TemplateError as e:
        assert "CR, LF, NUL" in str(e)
        assert any(c in value for c in "\r\n\x00") or "{{" in value
    else:
        assert rendered == f"Bearer {value}"
        assert not any(c in rendered for c in "\r\n\x00")


@given(value=st.text())
def test_a_body_value_is_one_json_string(value: str) -> None:
    body = templating.render_json_body('{"rev": {{args.rev}}, "n": 1}', {"rev": value})
    assert json.loads(body) == {"rev": value, "n": 1}
    assert "{{" not in body


def _template(web: dict[str, object]) -> dict[str, object]:
    return {
        "kind": "AnalysisTemplate",
        "metadata": {"name": "t"},
        "spec": {
            "metrics": [
                {"name": "m", "kind": "value", "provider": {"web": web}, "threshold": {"max": 0}}
            ]
        },
    }


@pytest.mark.parametrize(
    ("web", "problem"),
    [
        ({"url": "http://x/{{args.nope}}"}, "spec.metrics[0].provider.web.url"),
        ({"url": "{{args.rollout}}://x/"}, "spec.metrics[0].provider.web.url"),
        ({"url": "ftp://x/"}, "spec.metrics[0].provider.web.url"),
        ({"url": "http://x/", "body": "{}"}, "spec.metrics[0].provider.web.body"),
        ({"url": "http://x/", "jsonPath": "$.[["}, "spec.metrics[0].provider.web.jsonPath"),
        ({"url": "http://x/", "timeout": "0s"}, "spec.metrics[0].provider.web.timeout"),
        (
            {"url": "http://x/", "headers": [{"name": "A"}]},
            "spec.metrics[0].provider.web.headers[0]",
        ),
        (
            {"url": "http://x/", "headers": [{"name": "A", "value": "{{args.nope}}"}]},
            "spec.metrics[0].provider.web.headers[0].value",
        ),
    ],
)
def test_bad_web_fields_are_named(web: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidAnalysisSpec) as e:
        parse_template(_template(web))
    assert problem in str(e.value)


def test_a_web_metric_needs_a_threshold_and_kind_value() -> None:
    doc = _template({"url": "http://x/"})
    metric = doc["spec"]["metrics"][0]  # type: ignore[index]
    metric["kind"] = "gauge"
    with pytest.raises(InvalidAnalysisSpec, match="kind"):
        parse_template(doc)
