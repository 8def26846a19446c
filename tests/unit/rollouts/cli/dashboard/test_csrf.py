"""The operation forms' CSRF tokens and the same-origin rule."""

from __future__ import annotations

from rollouts.cli.dashboard.csrf import CsrfTokens, same_origin


def test_a_token_is_valid_only_for_its_own_session() -> None:
    tokens = CsrfTokens()
    a, b = tokens.new_session(), tokens.new_session()
    assert a != b
    assert tokens.valid(a, tokens.token(a))
    assert not tokens.valid(b, tokens.token(a))
    assert not tokens.valid(a, None) and not tokens.valid(None, tokens.token(a))
    assert not tokens.valid(a, "")


def test_tokens_die_with_the_process_key() -> None:
    session = CsrfTokens.new_session()
    assert not CsrfTokens().valid(session, CsrfTokens().token(session))


def test_same_origin() -> None:
    host = "127.0.0.1:7070"
    assert same_origin("http://127.0.0.1:7070", None, host, "http")
    assert not same_origin("http://evil.example", None, host, "http")
    assert not same_origin("http://127.0.0.1:7071", None, host, "http")
    assert not same_origin("null", None, host, "http")  # a sandboxed frame, a data: page
    # no Origin: the Referer decides; neither (a script): only the token guards
    assert same_origin(None, "http://127.0.0.1:7070/rollouts/ns/web/confirm/abort", host, "http")
    assert not same_origin(None, "http://evil.example/page", host, "http")
    assert same_origin(None, None, host, "http")
    assert not same_origin("http://127.0.0.1:7070", None, None, "http")
