"""Cross-site request forgery protection for the operation forms.

A page another site serves could POST to ``http://127.0.0.1:PORT/...`` from the user's browser.
Two checks stop it: every operation form carries a token derived from the browser's own session
cookie (SameSite=Strict, HttpOnly) with a key that lives only in this server process, and the
request's ``Origin`` (or, without one, ``Referer``), when the browser sends it, must be this
server's own origin. No token, a wrong token, or a foreign origin: 403, nothing sent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

SESSION_COOKIE = "sluice_dashboard_session"
FIELD = "csrf_token"


class CsrfTokens:
    """Session ids and the token each one's forms must carry; the key dies with the process."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    @staticmethod
    def new_session() -> str:
        return secrets.token_urlsafe(24)

    def token(self, session: str) -> str:
        return hmac.new(self._key, session.encode(), hashlib.sha256).hexdigest()

    def valid(self, session: str | None, token: str | None) -> bool:
        if not session or not token:
            return False
        return hmac.compare_digest(self.token(session), token)


def same_origin(origin: str | None, referer: str | None, host: str | None, scheme: str) -> bool:
    """Whether the browser says the request comes from this server's own pages.

    Browsers send ``Origin`` on every POST; a request with neither header (a script, curl) still
    needs the token, which it can only have read from a page of this server."""
    source = origin if origin and origin != "null" else None
    if source is None and referer:
        parts = urlsplit(referer)
        source = f"{parts.scheme}://{parts.netloc}" if parts.netloc else None
    if origin == "null":
        return False
    if source is None:
        return True
    return bool(host) and source.rstrip("/").lower() == f"{scheme}://{host}".lower()
