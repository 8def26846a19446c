"""Just enough PromQL lexing to say which metrics and labels an expression reads.

The dashboard and the alert rules are only useful if every series they name exists; Prometheus
answers a query for a misspelled metric with an empty result, not an error, so nothing else would
notice. A full PromQL parser is not a Python dependency worth taking for that, and the question is
lexical: a metric name is an identifier that is not a function call, a keyword or a number, and
whatever sits inside ``{...}`` (label matchers), ``[...]`` (ranges, subqueries, Grafana's
``$__rate_interval``) or quotes is not one. Anything the lexer cannot place raises, so a construct
it does not know fails the test instead of hiding a metric.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Keywords that read like identifiers but are operators or modifiers. The ones that take a label
# list in parentheses are the grouping keywords.
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OPTIONAL_LIST = {"group_left", "group_right"}  # `/ on(job) group_left y` has none
OPERATORS = {"and", "or", "unless", "bool", "offset", "atan2"}
NUMBER_WORDS = {"inf", "nan"}
# Aggregation operators are keywords: `sum by (le) (x)` puts the label list between the name and
# its parenthesis, so they cannot be told from metrics by a following `(` alone.
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip

IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# a number, or a duration (offset 5m, @ 1609746000); durations may chain units: 1h30m
NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|(?:\d+(?:ms|[smhdwy]))+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
)
# Grafana template variables: $var, ${var}, ${var:format}, [[var]] (the last outside brackets)
VARIABLE = re.compile(r"\$\{[^}]*\}|\$[a-zA-Z_][a-zA-Z0-9_]*|\[\[[^\]]*\]\]")
MATCH_OP = re.compile(r"=~|!~|!=|=")
SYMBOLS = set("+-*/%^=!<>(),@")


class PromQLError(ValueError):
    """An expression this lexer cannot read: a test failure, never a silent pass."""


@dataclass
class Selector:
    """One vector selector: a metric name (None for ``{__name__=~"..."}`` style) and its
    matchers as (label, operator, value) with the value unquoted."""

    name: str | None
    matchers: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Parsed:
    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)
    """Labels named by by/without/on/ignoring/group_left/group_right."""
    functions: set[str] = field(default_factory=set)

    @property
    def metrics(self) -> set[str]:
        return {s.name for s in self.selectors if s.name is not None}


def _string(expr: str, i: int) -> tuple[str, int]:
    """The string literal starting at ``i`` (", ' or `), unescaped enough to compare values."""
    quote = expr[i]
    j = i + 1
    out: list[str] = []
    while j < len(expr):
        c = expr[j]
        if c == "\\" and quote != "`":
            if j + 1 >= len(expr):
                break
            out.append(expr[j + 1])
            j += 2
            continue
        if c == quote:
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise PromQLError(f"unterminated string at {i}: {expr!r}")


def _skip_space(expr: str, i: int) -> int:
    while i < len(expr):
        if expr[i].isspace():
            i += 1
        elif expr[i] == "#":  # a comment runs to the end of the line
            while i < len(expr) and expr[i] != "\n":
                i += 1
        else:
            break
    return i


def _matchers(expr: str, i: int) -> tuple[list[tuple[str, str, str]], int]:
    """The label matchers of ``{...}`` starting at ``i`` (which is the ``{``)."""
    out: list[tuple[str, str, str]] = []
    i += 1
    while True:
        i = _skip_space(expr, i)
        if i < len(expr) and expr[i] == "}":
            return out, i + 1
        m = LABEL.match(expr, i)
        if not m:
            raise PromQLError(f"expected a label name at {i}: {expr!r}")
        label = m.group()
        i = _skip_space(expr, m.end())
        op = MATCH_OP.match(expr, i)
        if not op:
            raise PromQLError(f"expected a matcher operator after {label!r}: {expr!r}")
        i = _skip_space(expr, op.end())
        if i >= len(expr) or expr[i] not in "\"'`":
            raise PromQLError(f"expected a quoted value for {label!r}: {expr!r}")
        value, i = _string(expr, i)
        out.append((label, op.group(), value))
        i = _skip_space(expr, i)
        if i < len(expr) and expr[i] == ",":
            i += 1
        elif i >= len(expr) or expr[i] != "}":
            raise PromQLError(f"expected ',' or '}}' after {label!r}: {expr!r}")


def _label_list(expr: str, i: int) -> tuple[list[str], int]:
    """``(a, b)`` after a grouping keyword, starting at the ``(``."""
    close = expr.find(")", i)
    if close < 0:
        raise PromQLError(f"unclosed label list at {i}: {expr!r}")
    labels = [part.strip() for part in expr[i + 1 : close].split(",") if part.strip()]
    for label in labels:
        if not LABEL.fullmatch(label):
            raise PromQLError(f"not a label name in a grouping list: {label!r} in {expr!r}")
    return labels, close + 1


def parse(expr: str) -> Parsed:
    """The selectors, grouping labels and functions of one PromQL expression."""
    result = Parsed()
    depth = 0
    i = 0
    while True:
        i = _skip_space(expr, i)
        if i >= len(expr):
            break
        c = expr[i]
        var = VARIABLE.match(expr, i)
        if var:
            i = var.end()
        elif c in "\"'`":
            _, i = _string(expr, i)
        elif c == "[":  # range, subquery or a Grafana interval: never a metric
            close = expr.find("]", i)
            if close < 0:
                raise PromQLError(f"unclosed '[' at {i}: {expr!r}")
            i = close + 1
        elif c == "{":  # a selector with no name before it: {__name__="..."}
            bare, i = _matchers(expr, i)
            names = [v for label, op, v in bare if label == "__name__" and op == "="]
            result.selectors.append(Selector(names[0] if names else None, bare))
        elif c.isdigit() or (c == "." and i + 1 < len(expr) and expr[i + 1].isdigit()):
            m = NUMBER.match(expr, i)
            assert m is not None
            i = m.end()
            if i < len(expr) and (expr[i].isalnum() or expr[i] == "_"):
                raise PromQLError(f"malformed number at {m.start()}: {expr!r}")
        elif ident := IDENT.match(expr, i):
            word = ident.group()
            i = _skip_space(expr, ident.end())
            nxt = expr[i] if i < len(expr) else ""
            lower = word.lower()
            if lower in GROUPING:
                if nxt == "(":
                    labels, i = _label_list(expr, i)
                    result.grouping.update(labels)
                elif lower not in OPTIONAL_LIST:
                    raise PromQLError(f"{word} without a label list: {expr!r}")
            elif lower in OPERATORS or lower in NUMBER_WORDS:
                pass
            elif nxt == "(" or lower in AGGREGATIONS:
                result.functions.add(word)
            else:
                matchers: list[tuple[str, str, str]] = []
                if nxt == "{":
                    matchers, i = _matchers(expr, i)
                result.selectors.append(Selector(word, matchers))
        elif c in SYMBOLS:
            depth += {"(": 1, ")": -1}.get(c, 0)
            if depth < 0:
                raise PromQLError(f"unbalanced ')' at {i}: {expr!r}")
            i += 1
        else:
            raise PromQLError(f"unexpected {c!r} at {i}: {expr!r}")
    if depth != 0:
        raise PromQLError(f"unbalanced parentheses: {expr!r}")
    return result


def metric_names(expr: str) -> set[str]:
    return parse(expr).metrics
