"""One message to one receiver URL, through apprise (Slack, Teams, Discord, e-mail, webhooks).

apprise owns the services' protocols; this module only bounds the time a delivery may take and
turns apprise's boolean answer into an error with apprise's own reason, for the Warning Event.
"""

from __future__ import annotations

import logging
import threading

from rollouts.notifications.transitions import Notice


class DeliveryError(Exception):
    """The receiver did not take the message; the text says why (never the URL: it has tokens)."""


class _ThreadCapture(logging.Handler):
    """apprise logs why a delivery failed; capture it per thread, since several senders run at
    once and apprise's own LogCapture swaps a process-wide handler."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        lines: list[str] | None = getattr(self.local, "lines", None)
        if lines is not None:
            lines.append(record.getMessage())


_capture = _ThreadCapture()
logging.getLogger("apprise").addHandler(_capture)


def deliver(url: str, notice: Notice, timeout: float) -> None:
    """Send ``notice`` to ``url``; connect and read each take at most ``timeout`` seconds."""
    # imported on first use, in a sender thread: apprise loads its hundred plugins (seconds on a
    # busy node), which the controller's start and Rollouts without notifications need not wait for
    import apprise

    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        raise DeliveryError("not a URL apprise can send to (check its scheme and fields)")
    plugin.socket_connect_timeout = min(plugin.socket_connect_timeout, timeout)
    plugin.socket_read_timeout = min(plugin.socket_read_timeout, timeout)
    lines: list[str] = []
    _capture.local.lines = lines
    try:
        ok = plugin.notify(
            body=notice.body, title=notice.title, notify_type=apprise.NotifyType(notice.level)
        )
    except Exception as e:  # a plugin's own bug must not kill the sender thread
        raise DeliveryError(f"{type(e).__name__}: {_scrub(str(e), url)}") from None
    finally:
        _capture.local.lines = None
    if not ok:
        why = _scrub(lines[-1], url) if lines else "the receiver did not accept the message"
        raise DeliveryError(why)


def _scrub(text: str, url: str) -> str:
    return text.replace(url, "<receiver URL>")
