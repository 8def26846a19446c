"""Run the dashboard: one shared watch, the app, and uvicorn on a socket bound here.

The socket is bound before uvicorn starts so that ``--port 0`` can print the port it got (tests
and scripts read that line) and a port in use fails as one clear line.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from typing import Any

import click
import uvicorn

from rollouts.cli.connection import CliError, Target
from rollouts.cli.dashboard.app import LOOPBACK_HOSTS, create_app, namespaced
from rollouts.cli.dashboard.feeds import PageFeeds
from rollouts.cli.dashboard.hub import Key, RolloutHub
from rollouts.cli.rollout_view import RolloutView, gather


def bind(address: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            address.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where)
    except OSError as e:
        raise CliError(f"cannot listen on {address}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in str(host) else str(host)
    return f"http://{shown}:{port}/"


def serve(
    target: Target,
    *,
    namespace: str | None,
    address: str,
    port: int,
    remote: bool,
    read_only: bool,
) -> None:
    def read(key: Key, doc: dict[str, Any]) -> RolloutView:
        return gather(replace(target, namespace=key[0]), key[1], doc)

    hub = RolloutHub(target, namespace)
    app = create_app(
        hub,
        PageFeeds(hub, read),
        namespaced(target),
        read_only=read_only,
        allowed_hosts=None if remote else (*LOOPBACK_HOSTS, address.strip("[]")),
        context=target.context,
    )
    sock = bind(address, port)
    where = "every namespace" if namespace is None else f"namespace {namespace}"
    click.echo(
        f"Sluice dashboard on {url_of(sock)} ({where}, context {target.context}); Ctrl-C stops it"
    )
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2, access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock])
