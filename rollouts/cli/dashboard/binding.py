"""Where the dashboard listens, and the rule that keeps it on this machine unless asked.

The dashboard acts with the user's own kubeconfig credentials: anyone who can reach the port can
read what those credentials read (and, with a token from a page, operate). Listening on a
loopback address keeps it to this machine; any other address is refused unless the user says
``--allow-remote``, and even then a warning says what it means.
"""

from __future__ import annotations

import ipaddress
import socket


class RemoteBindRefused(ValueError):
    """A non-loopback ``--address`` without ``--allow-remote``."""


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(address: str) -> bool:
    """Whether every address ``address`` stands for is a loopback one (127.0.0.0/8, ::1).

    A host name counts only if it resolves to loopback addresses alone; an empty address or
    ``0.0.0.0``/``::`` (every interface) is never loopback."""
    host = address.strip().strip("[]")
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {str(info[4][0]) for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def check_bind(address: str, allow_remote: bool) -> str | None:
    """None for a loopback address; the warning to print for a remote one the user allowed.

    Raises :class:`RemoteBindRefused` for a remote address without ``allow_remote``."""
    if is_loopback(address):
        return None
    if not allow_remote:
        raise RemoteBindRefused(
            f"--address {address}: not a loopback address; the dashboard acts with your "
            "kubeconfig credentials, so anyone who can reach it could read your Rollouts and "
            "request operations. Pass --allow-remote to listen there anyway."
        )
    return (
        f"warning: listening on {address}, not loopback: anyone who can reach this address "
        "sees your Rollouts through your kubeconfig credentials (operations still need a "
        "token from a page)"
    )
