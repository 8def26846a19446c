"""Argument values can never change a query's structure.

The proof is by construction: a tokenizer written here from Prometheus' lexer rules
(``promql/parser/lex.go``: ``lexString``, ``lexEscape``) and Go's ``strconv.Unquote`` reads the
rendered query at the placeholder's position. For any value it must find exactly one string token
that decodes to the value, followed by exactly the template's own text. It shares no code with
``analysis.templating``, so a misunderstanding of the escaping rules there cannot hide here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from analysis.templating import (
    WINDOW,
    TemplateError,
    check,
    placeholders,
    promql_string,
    render,
    resolve_args,
)

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_SIMPLE |= {"\\": "\\", '"': '"'}
_DIGITS = {"x": (2, 16), "u": (4, 16), "U": (8, 16)}


class LexError(Exception):
    """The text is not one well-formed PromQL double-quoted string here."""


def read_string(text: str, pos: int) -> tuple[str, int]:
    """The value of the double-quoted string token at ``text[pos]`` and the index after it."""
    if text[pos : pos + 1] != '"':
        raise LexError(f"no string at {pos}: {text[pos : pos + 10]!r}")
    out = []
    i = pos + 1
    while True:
        if i >= len(text):
            raise LexError("unterminated quoted string (end of input)")
        ch = text[i]
        i += 1
        if ch == '"':
            return "".join(out), i
        if ch == "\n":
            raise LexError("unterminated quoted string (newline)")
        if ch == "\ufffd":
            raise LexError("invalid UTF-8 rune")  # lexString reads U+FFFD as utf8.RuneError
        if ch != "\\":
            out.append(ch)
            continue
        if i >= len(text):
            raise LexError("escape sequence not terminated")
        esc = text[i]
        i += 1
        if esc in _SIMPLE:
            out.append(_SIMPLE[esc])
            continue
        if esc in "01234567":
            n, base, i = 3, 8, i - 1
        elif esc in _DIGITS:
            n, base = _DIGITS[esc]
        else:
            raise LexError(f"unknown escape sequence \\{esc}")
        digits = text[i : i + n]
        valid = "01234567" if base == 8 else "0123456789abcdefABCDEF"
        if len(digits) != n or any(d not in valid for d in digits):
            raise LexError(f"bad escape digits {digits!r}")
        code = int(digits, base)
        i += n
        if esc in "01234567x" and code >= 0x80:
            raise LexError("a byte escape >= 0x80 would make the string invalid UTF-8")
        if code > 0x10FFFF or 0xD800 <= code < 0xE000:
            raise LexError("escape sequence is an invalid Unicode code point")
        out.append(chr(code))


@dataclass(frozen=True)
class Case:
    prefix: str
    suffix: str


PREFIX = "sum(rate(http_requests_total{service="
SUFFIX = ',code=~"5.."}[' + WINDOW + "]))"

INJECTIONS = [
    "",
    "web",
    '"} or vector(1) #',
    '"} or vector(1) #\n',
    'web"} or on() vector(1) or {a="',
    "\\",
    '\\"',
    '\\\\"',
    "}",
    "}}",
    "{{args.service}}",
    "{{window}}",
    "\n",
    "\r\n",
    "a\x00b",
    "\x7f",
    "`",
    "'",
    "é✓🚀",
    "\ufffd",
    "\u2028\u2029",
    "\u200d",
    "\U0010ffff",
    "#",
    '\\x41"',
    "\\u0022",
]


def assert_one_string_token(template_prefix: str, rendered: str, value: str, suffix: str) -> None:
    assert rendered.startswith(template_prefix)
    token, end = read_string(rendered, len(template_prefix))
    assert token == value
    assert rendered[end:] == suffix


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_strings_become_one_string_token(value: str) -> None:
    rendered = render(PREFIX + "{{args.service}}" + SUFFIX, {"service": value})
    assert_one_string_token(PREFIX, rendered, value, SUFFIX)


@given(st.text())
@settings(max_examples=400, deadline=None)
@example('"} or vector(1) #')
def test_any_value_reads_back_exactly_as_one_token(value: str) -> None:
    rendered = render(PREFIX + "{{args.service}}" + SUFFIX, {"service": value})
    assert_one_string_token(PREFIX, rendered, value, SUFFIX)
    # the provider substitutes the window after rendering; it must not reach into values
    windowed = rendered.replace(WINDOW, "30s")
    assert_one_string_token(PREFIX, windowed, value, SUFFIX.replace(WINDOW, "30s"))


@given(st.text(), st.text())
@settings(max_examples=200, deadline=None)
def test_two_placeholders_keep_the_text_between_them(first: str, second: str) -> None:
    mid = "} or on() y{b="
    template = "x{a={{args.a}}" + mid + "{{ args.b }}}"
    rendered = render(template, {"a": first, "b": second})
    token, end = read_string(rendered, len("x{a="))
    assert token == first
    assert rendered[end:].startswith(mid)
    assert_one_string_token(rendered[: end + len(mid)], rendered, second, "}")


@given(st.characters(blacklist_categories=("Cs",)))
def test_the_literal_never_holds_a_raw_newline_quote_or_brace(ch: str) -> None:
    literal = promql_string(ch * 3)
    body = literal[1:-1]
    assert "\n" not in body and "\r" not in body and "{" not in body and "}" not in body
    assert '"' not in body.replace('\\"', "")


def test_the_tokenizer_rejects_what_prometheus_rejects() -> None:
    """The checker itself must be able to fail, or the proofs above prove nothing."""
    for bad in ['"abc', '"a\nb"', '"\\q"', '"\\x4"', '"\\ud800"', '"\\xff"', '"\ufffd"', "abc"]:
        with pytest.raises(LexError):
            read_string(bad, 0)
    # a naive rendering does break out of the string
    naive = PREFIX + '"' + '"} or vector(1) #' + '"' + SUFFIX
    token, end = read_string(naive, len(PREFIX))
    assert token == "" and naive[end:] != SUFFIX


def test_window_is_left_for_the_provider_and_normalised() -> None:
    assert render("rate(x[{{ window }}])", {}) == "rate(x[{{window}}])"
    assert render("rate(x[{{window}}])", {}) == "rate(x[{{window}}])"


def test_spaces_inside_the_braces_are_allowed() -> None:
    assert render("x{a={{  args.app\t}}}", {"app": "web"}) == 'x{a="web"}'


def test_a_selector_brace_next_to_a_placeholder_is_kept() -> None:
    """`{app={{args.app}}}`: the selector's braces touch the placeholder's on both sides."""
    assert render("{app={{args.app}}}", {"app": "web"}) == '{app="web"}'
    assert render("{{{args.app}}}", {"app": "web"}) == '{"web"}'


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("x{a={{args.nope}}}", "'{{args.nope}}' at offset 4 names an arg that has no value"),
        ("x{a={{foo}}}", "unknown placeholder '{{foo}}' at offset 4"),
        ("x{a={{ args }}}", "unknown placeholder '{{ args }}'"),
        ("x{a={{args.}}}", "unknown placeholder '{{args.}}'"),
        ("x{a={{args.a b}}}", "unknown placeholder '{{args.a b}}'"),
        ("x{a={{args.app}", "unterminated placeholder at offset 4: '{{args.app}'"),
        ("x{a={{args.app", "unterminated placeholder at offset 4"),
        ("x{a={{{{args.app}}}}", "unterminated placeholder at offset 4"),
        ('x{a="{{args.app}}"}', "is inside a quoted string; write it bare"),
        ("x{a='pre{{args.app}}'}", "is inside a quoted string"),
        ("x{a=`{{args.app}}`}", "is inside a quoted string"),
        ('x{a="\\"{{args.app}}"}', "is inside a quoted string"),
    ],
)
def test_bad_templates_name_the_placeholder(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as e:
        render(template, {"app": "web"})
    assert message in str(e.value)


def test_text_after_a_closed_string_is_outside_it() -> None:
    assert render('x{a="\\\\",b={{args.app}}}', {"app": "w"}) == 'x{a="\\\\",b="w"}'
    assert render("x{a=`\\`,b={{args.app}}}", {"app": "w"}) == 'x{a=`\\`,b="w"}'


def test_a_value_no_promql_string_can_hold_is_refused_naming_the_arg() -> None:
    with pytest.raises(TemplateError, match=r"arg 'app'.*surrogate"):
        render("x{a={{args.app}}}", {"app": "a\ud800"})


def test_placeholders_are_listed_with_positions_and_check_names_unknown_args() -> None:
    found = placeholders("x{a={{args.a}},b={{args.b}}}[{{window}}]")
    assert [(p.start, p.arg) for p in found] == [(4, "a"), (17, "b"), (29, None)]
    assert check("x{a={{args.a}}}", {"a"}) == ["a"]
    with pytest.raises(TemplateError, match=r"\{\{args.b\}\}, \{\{args.c\}\} name no declared"):
        check("x{a={{args.c}},b={{args.b}}}", {"a"})


# ---------------------------------------------------------------------------------------------
# resolve_args
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class A:
    name: str
    value: str | None = None


def test_values_come_from_the_rollout_then_builtins_then_defaults() -> None:
    declared = [A("service"), A("namespace", "shop"), A("canary-slot", "x"), A("window-size", "5m")]
    resolved = resolve_args(
        declared,
        {"service": "web", "window-size": "1m"},
        builtins={"canary-slot": "b", "rollout": "web"},
    )
    assert resolved == {
        "service": "web",
        "namespace": "shop",
        "canary-slot": "b",
        "window-size": "1m",
        "rollout": "web",
    }


def test_a_rollout_value_overrides_a_builtin_of_a_declared_arg() -> None:
    resolved = resolve_args(
        [A("namespace")], {"namespace": "other"}, builtins={"namespace": "shop"}
    )
    assert resolved["namespace"] == "other"


def test_missing_and_unknown_args_are_named() -> None:
    with pytest.raises(TemplateError) as e:
        resolve_args([A("service"), A("team")], {"servce": "web"})
    assert str(e.value) == (
        "args 'service', 'team' have no value: the template gives no default and the Rollout "
        "passes none; arg 'servce' given but not declared by the template"
    )
    with pytest.raises(TemplateError, match=r"^arg 'service' has no value"):
        resolve_args([A("service")], {})


def test_builtins_are_not_unknown_and_lenient_mode_passes_extras_through() -> None:
    assert resolve_args([], {"rollout": "web"}, builtins={"rollout": "x"}) == {"rollout": "web"}
    assert resolve_args([A("a", "1")], {"b": "2"}, strict=False) == {"a": "1", "b": "2"}
