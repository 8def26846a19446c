"""Query templates: ``{{args.NAME}}`` placeholders filled with PromQL string literals.

An argument value comes from a Rollout, i.e. from whoever may edit one; pasted raw into PromQL, a
value such as ``"} or vector(1) #`` would turn an error-rate query into one that always passes.
So a value is never pasted: it becomes one complete double-quoted PromQL string literal (quotes
included, templates write ``{app={{args.app}}}``), escaped by the rules of Prometheus' own lexer
(``promql/parser/lex.go``: ``lexString``, ``lexEscape``; the value is then read with Go's
``strconv.Unquote``). Whatever the value, the rendered query has the template's structure with one
string token where the placeholder was. A placeholder written inside a quoted string would break
that guarantee, so it is refused.

``{{window}}`` is not an argument: the provider replaces it with the measurement window as a
PromQL duration when it queries, so ``render`` leaves it in place (normalised to ``{{window}}``).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

WINDOW = "{{window}}"
ARG_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
"""What an argument name may look like: hyphens allowed, as the built-in ``canary-slot`` has."""

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_ARG = re.compile(rf"args\.({ARG_NAME})")

# Escapes Go's strconv.Unquote reads in a double-quoted string (lexEscape accepts the same).
_SHORT_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\v": "\\v",
    # Braces are legal in strings, but "{{window}}" inside a value would be rewritten by the
    # provider's window substitution; escaped, no value ever contains a placeholder.
    "{": "\\x7b",
    "}": "\\x7d",
}
_REPLACEMENT_CHAR = "\ufffd"  # lexString reads a literal U+FFFD as utf8.RuneError and fails


class TemplateError(ValueError):
    """A query template or its arguments cannot give a well-formed query; names what is wrong."""


class _NamedArg(Protocol):
    """What ``resolve_args`` needs of ``analysis.api.Arg`` (kept structural: api imports us)."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str | None: ...


def promql_string(value: str) -> str:
    """``value`` as one double-quoted PromQL string literal that reads back as exactly ``value``.

    Printable characters pass through (UTF-8 is fine in PromQL strings), except the quote, the
    backslash and braces; everything else is escaped, so no raw newline (which ends the literal with an
    "unterminated quoted string" error) and no invisible character reaches Prometheus or a log.
    """
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif 0xD800 <= code < 0xE000:
            raise TemplateError(
                f"value {value!r} contains a lone surrogate (U+{code:04X}), "
                "which no PromQL string can hold"
            )
        elif ch.isprintable() and ch != _REPLACEMENT_CHAR:
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


@dataclass(frozen=True)
class Placeholder:
    """One ``{{...}}`` in a template: where it is, and what it names."""

    start: int
    end: int
    text: str
    arg: str | None  # the argument's name; None for {{window}}


def placeholders(query: str) -> list[Placeholder]:
    """Every placeholder of ``query``, checked for shape; raises TemplateError naming the first
    that is not ``{{args.NAME}}`` or ``{{window}}``, is unterminated, or sits in a string."""
    found: list[Placeholder] = []
    state = _Strings()
    pos = 0
    for m in _PLACEHOLDER.finditer(query):
        state.feed(query, pos, m.start())
        inner = m.group(1)
        arg = _ARG.fullmatch(inner)
        if inner != "window" and arg is None:
            raise TemplateError(f"unknown placeholder {m.group(0)!r} at offset {m.start()}")
        if state.quote is not None:
            raise TemplateError(
                f"placeholder {m.group(0)!r} at offset {m.start()} is inside a quoted string; "
                "write it bare, it renders with its own quotes"
                if arg is not None
                else f"placeholder {m.group(0)!r} at offset {m.start()} is inside a quoted string"
            )
        found.append(Placeholder(m.start(), m.end(), m.group(0), arg.group(1) if arg else None))
        pos = m.end()
    state.feed(query, pos, len(query))
    return found


class _Strings:
    """Tracks whether a template's text is inside a PromQL string literal, as lex.go would.

    Only literal text is fed: placeholders are tokens of their own. Escapes matter only in
    "..." and '...'; raw `...` strings have none.
    """

    def __init__(self) -> None:
        self.quote: str | None = None
        self._escaped = False

    def feed(self, text: str, start: int, end: int) -> None:
        for i in range(start, end):
            ch = text[i]
            if self.quote is None:
                if ch in "\"'`":
                    self.quote = ch
                continue
            if self._escaped:
                self._escaped = False
            elif ch == "\\" and self.quote != "`":
                self._escaped = True
            elif ch == self.quote:
                self.quote = None
        segment = text[start:end]
        if "{{" in segment:
            at = start + segment.index("{{")
            raise TemplateError(
                f"unterminated placeholder at offset {at}: {text[at : at + 40]!r} "
                "(placeholders are {{args.NAME}} or {{window}})"
            )


def check(query: str, allowed: Iterable[str]) -> list[str]:
    """The argument names ``query`` uses, after checking each is in ``allowed``.

    Templates are checked when they are parsed, so a typo fails ``sluice lint`` and the API
    server's view of the object, not the first analysis of a rollout.
    """
    names = set(allowed)
    used = [p.arg for p in placeholders(query) if p.arg is not None]
    unknown = sorted({n for n in used if n not in names})
    if unknown:
        raise TemplateError(
            f"{', '.join('{{args.' + n + '}}' for n in unknown)} "
            f"name{'s' if len(unknown) == 1 else ''} no declared arg"
        )
    return used


def render(query: str, args: Mapping[str, str]) -> str:
    """``query`` with each ``{{args.NAME}}`` replaced by ``args[NAME]`` as a PromQL string."""
    out = []
    pos = 0
    for p in placeholders(query):
        out.append(query[pos : p.start])
        if p.arg is None:
            out.append(WINDOW)
        elif p.arg in args:
            try:
                out.append(promql_string(args[p.arg]))
            except TemplateError as e:
                raise TemplateError(f"arg {p.arg!r}: {e}") from None
        else:
            raise TemplateError(f"{p.text!r} at offset {p.start} names an arg that has no value")
        pos = p.end
    out.append(query[pos:])
    return "".join(out)


def resolve_args(
    declared: Sequence[_NamedArg],
    given: Mapping[str, str],
    *,
    builtins: Mapping[str, str] | None = None,
    strict: bool = True,
) -> dict[str, str]:
    """Every argument's value: the Rollout's, else the built-in one, else the template default.

    The result holds every built-in too, so queries may use them undeclared.

    ``builtins`` are the values every run gets from the Rollout (``analysis.api.BUILTIN_ARGS``);
    they are available without being declared. ``strict`` refuses given args that nothing
    declares, since a misspelt arg would otherwise leave its default silently in force; turn it off
    when one Rollout's args feed several templates, and check against their union instead.
    """
    builtin = dict(builtins or {})
    out = dict(builtin)
    missing = []
    for arg in declared:
        if arg.name in given:
            out[arg.name] = given[arg.name]
        elif arg.name in builtin:
            pass
        elif arg.value is not None:
            out[arg.name] = arg.value
        else:
            missing.append(arg.name)
    problems = []
    if missing:
        problems.append(
            f"arg{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            "ha{} no value: the template gives no default and the Rollout passes none".format(
                "ve" if len(missing) > 1 else "s"
            )
        )
    if strict:
        known = {a.name for a in declared} | set(builtin)
        unknown = [n for n in given if n not in known]
        if unknown:
            problems.append(
                f"arg{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                "given but not declared by the template"
            )
    if problems:
        raise TemplateError("; ".join(problems))
    declared_names = {a.name for a in declared}
    for name, value in given.items():
        if name not in declared_names:  # a built-in (or, not strict, an extra): the Rollout's wins
            out[name] = value
    return out


# ------------------------------------------------------------------------------ URLs, headers, bodies
#
# A web metric's URL, header values and POST body take ``{{args.NAME}}`` too, and the same
# promise holds: whatever the value, the request keeps the template's structure. In a URL a value
# is percent-encoded as one component (no "/", "?", "#", "&" or "=" survives), so it can never
# add a path segment, a query parameter or change the host; in the host only a DNS name is
# accepted (so `http://{{args.canary-service}}.{{args.namespace}}:8080/` works) and the scheme and
# port take none. Header values refuse CR, LF and NUL (no header injection). In a body a value
# becomes one JSON string literal.

_URL_PARTS = ("scheme", "host", "port", "path", "query", "fragment")
_DNS_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_HEADER_BAD = re.compile(r"[\r\n\x00]")


def _url_part(literal_before: str) -> str:
    """Which part of a URL the text after ``literal_before`` (the template so far) is in."""
    if "://" not in literal_before:
        return "scheme"
    rest = literal_before.split("://", 1)[1]
    if "#" in rest:
        return "fragment"
    if "?" in rest:
        return "query"
    if "/" in rest:
        return "path"
    if ":" in rest.rsplit("@", 1)[-1]:
        return "port"
    return "host"


def url_placeholders(url: str) -> list[tuple[Placeholder, str]]:
    """Each placeholder of a URL template with the URL part it sits in; refuses ``{{window}}``
    and placeholders in the scheme or port (TemplateError naming it)."""
    found = []
    for p in _plain_placeholders(url):
        if p.arg is None:
            raise TemplateError(f"{p.text!r} at offset {p.start}: a URL has no window")
        # the literal text before it, with earlier placeholders standing for a harmless word
        literal = _PLACEHOLDER.sub("x", url[: p.start])
        part = _url_part(literal)
        if part in ("scheme", "port"):
            raise TemplateError(
                f"{p.text!r} at offset {p.start} is in the URL's {part}, which takes no argument"
            )
        found.append((p, part))
    return found


def _plain_placeholders(text: str) -> list[Placeholder]:
    """Placeholders in text with no string syntax (URLs, headers, bodies)."""
    found: list[Placeholder] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        if "{{" in text[pos : m.start()]:
            at = pos + text[pos : m.start()].index("{{")
            raise TemplateError(f"unterminated placeholder at offset {at}")
        inner = m.group(1)
        arg = _ARG.fullmatch(inner)
        if inner != "window" and arg is None:
            raise TemplateError(f"unknown placeholder {m.group(0)!r} at offset {m.start()}")
        found.append(Placeholder(m.start(), m.end(), m.group(0), arg.group(1) if arg else None))
        pos = m.end()
    if "{{" in text[pos:]:
        raise TemplateError(f"unterminated placeholder at offset {pos + text[pos:].index('{{')}")
    return found


def _check_names(used: Iterable[str], allowed: Iterable[str]) -> list[str]:
    names = set(allowed)
    used = list(used)
    unknown = sorted({n for n in used if n not in names})
    if unknown:
        raise TemplateError(
            f"{', '.join('{{args.' + n + '}}' for n in unknown)} "
            f"name{'s' if len(unknown) == 1 else ''} no declared arg"
        )
    return used


def check_url(url: str, allowed: Iterable[str]) -> list[str]:
    """The argument names a URL template uses, each checked declared and placed where allowed."""
    return _check_names((p.arg for p, _ in url_placeholders(url) if p.arg), allowed)


def check_text(text: str, allowed: Iterable[str]) -> list[str]:
    """The argument names a header value or body template uses, each checked declared."""
    found = _plain_placeholders(text)
    for p in found:
        if p.arg is None:
            raise TemplateError(f"{p.text!r} at offset {p.start}: only {{{{args.NAME}}}} here")
    return _check_names((p.arg for p in found if p.arg), allowed)


def _value_of(p: Placeholder, args: Mapping[str, str]) -> str:
    if p.arg is None or p.arg not in args:
        raise TemplateError(f"{p.text!r} at offset {p.start} names an arg that has no value")
    return args[p.arg]


def render_url(url: str, args: Mapping[str, str]) -> str:
    """``url`` with each placeholder's value percent-encoded into its part (see above)."""
    out = []
    pos = 0
    for p, part in url_placeholders(url):
        value = _value_of(p, args)
        out.append(url[pos : p.start])
        if part == "host":
            if not _DNS_NAME.fullmatch(value):
                raise TemplateError(
                    f"arg {p.arg!r}: value {value!r} is not a DNS name, so it cannot be part of "
                    "the URL's host"
                )
            out.append(value)
        else:
            out.append(urllib.parse.quote(value, safe=""))
        pos = p.end
    out.append(url[pos:])
    return "".join(out)


def render_header(value: str, args: Mapping[str, str]) -> str:
    """A header value with its placeholders filled; a value with CR, LF or NUL is refused."""
    out = []
    pos = 0
    for p in _plain_placeholders(value):
        arg = _value_of(p, args)
        if _HEADER_BAD.search(arg) or "{{" in arg:
            raise TemplateError(f"arg {p.arg!r}: a header value cannot hold CR, LF, NUL or {{{{")
        out.append(value[pos : p.start])
        out.append(arg)
        pos = p.end
    out.append(value[pos:])
    return "".join(out)


def render_json_body(body: str, args: Mapping[str, str]) -> str:
    """A POST body with each placeholder replaced by a JSON string literal of its value (quotes
    included, as in PromQL: write ``{"rev": {{args.canary-revision}}}``)."""
    out = []
    pos = 0
    for p in _plain_placeholders(body):
        out.append(body[pos : p.start])
        out.append(json.dumps(_value_of(p, args)).replace("{", "\\u007b").replace("}", "\\u007d"))
        pos = p.end
    out.append(body[pos:])
    return "".join(out)
