"""The CLI's connection to a cluster, and every way it can fail as one line.

The commands that talk to a cluster (``get``, ``list``, ``status``, the operations) share this:
the current kubeconfig context (as kubectl would pick it), the context's namespace as the default,
and a translation of the ``kubernetes`` client's exceptions into a :class:`CliError`, so a user
with no cluster, a wrong name or too few permissions reads one sentence, never a traceback.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import click
import kubernetes
import kubernetes.watch
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from analysis.api_conventions import parse_duration

GROUP = "sluice.dev"
VERSION = "v1alpha1"
ROLLOUTS = "rollouts"
ANALYSIS_RUNS = "analysisruns"
LABEL_ROLLOUT = "sluice.dev/rollout"

REQUEST_TIMEOUT = 15.0
"""Seconds for one API request: long enough for a busy API server, short enough that a wrong
address fails while the user is still looking."""

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A failure the user can act on, printed by click as ``Error: <message>`` with exit code 1."""


@dataclass
class Target:
    """Where the commands act: an API client, the namespace, and the context's name (for errors)."""

    api: kubernetes.client.ApiClient
    namespace: str
    context: str
    server: str

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    @property
    def apps(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.api)

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]


def connect(
    kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> Target:
    """Open a client for ``context`` (default: the current one) of ``kubeconfig`` (default:
    ``$KUBECONFIG`` or ``~/.kube/config``), or the in-cluster service account when there is no
    kubeconfig at all (a CI job running in a pod)."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
    path = os.path.expanduser(path or "~/.kube/config")
    if kubeconfig is None and not os.path.exists(path) and _in_cluster():
        return _in_cluster_target(namespace)
    if not os.path.exists(path):
        raise CliError(
            f"no cluster configured: kubeconfig {path} does not exist "
            "(set KUBECONFIG or pass --kubeconfig)"
        )
    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=path
        )
        chosen = active
        if context is not None:
            chosen = next((c for c in contexts if c["name"] == context), None)
            if chosen is None:
                names = ", ".join(sorted(c["name"] for c in contexts)) or "none"
                raise CliError(f"no context {context!r} in {path} (contexts: {names})")
        if chosen is None:
            raise CliError(f"no current context in {path} (pass --context)")
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=chosen["name"], client_configuration=config
        )
    except ConfigException as e:
        raise CliError(f"cannot use kubeconfig {path}: {_one_line(str(e))}") from None
    config.retries = 1
    ns = namespace or (chosen.get("context") or {}).get("namespace") or "default"
    api = kubernetes.client.ApiClient(config)
    return Target(api=api, namespace=ns, context=str(chosen["name"]), server=str(config.host))


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def _in_cluster_target(namespace: str | None) -> Target:
    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=config
        )
    except ConfigException as e:
        raise CliError(f"cannot use the in-cluster service account: {_one_line(str(e))}") from None
    ns = namespace
    if ns is None:
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                ns = f.read().strip()
        except OSError:
            ns = "default"
    config.retries = 1
    api = kubernetes.client.ApiClient(config)
    return Target(api=api, namespace=ns or "default", context="in-cluster", server=str(config.host))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _api_message(e: ApiException) -> str:
    """The API server's own explanation (its Status ``message``), else the HTTP reason."""
    try:
        body = json.loads(e.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return _one_line(str(body["message"]))
    return _one_line(str(e.reason or f"HTTP {e.status}"))


def describe(error: BaseException, what: str, target: Target | None = None) -> str:
    """One line saying what failed and, where it is clear, what to do about it."""
    where = f" (context {target.context}, {target.server})" if target is not None else ""
    if isinstance(error, ApiException):
        status = error.status or 0
        if status == 404:
            return f"{what}: not found"
        if status == 401:
            return f"{what}: unauthorized: the cluster refused the credentials{where}"
        if status == 403:
            return f"{what}: forbidden: {_api_message(error)}"
        if status == 0:
            return f"{what}: cannot reach the cluster{where}: {_one_line(str(error.reason))}"
        return f"{what}: the API server answered {status}: {_api_message(error)}"
    if isinstance(error, urllib3.exceptions.HTTPError | OSError):
        reason = getattr(error, "reason", None) or error
        return f"{what}: cannot reach the cluster{where}: {_one_line(str(reason))}"
    return f"{what}: {_one_line(str(error))}"


@contextmanager
def api_errors(what: str, target: Target | None = None) -> Iterator[None]:
    """Turn any failure of the API calls inside into a :class:`CliError` naming ``what``."""
    try:
        yield
    except CliError:
        raise
    except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as e:
        raise CliError(describe(e, what, target)) from None


def not_installed_hint(error: ApiException) -> bool:
    """A 404 for the collection itself (no object name in the Status): the CRD is missing."""
    try:
        details = (json.loads(error.body or "") or {}).get("details") or {}
    except (TypeError, ValueError, AttributeError):
        return False
    return not details.get("name")


def get_rollout(target: Target, name: str, namespace: str | None = None) -> dict[str, Any]:
    """The Rollout as the API server has it, or a :class:`CliError` naming it."""
    ns = namespace or target.namespace
    what = f"rollout {ns}/{name}"
    try:
        obj = target.custom.get_namespaced_custom_object(
            GROUP, VERSION, ns, ROLLOUTS, name, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as e:
        if e.status == 404 and not_installed_hint(e) and not _has_rollouts(target, ns):
            raise CliError(
                f"{what}: the cluster has no Rollout kind (sluice.dev/v1alpha1); "
                "is Sluice installed? (kubectl apply -k deploy/)"
            ) from None
        raise CliError(describe(e, what, target)) from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise CliError(describe(e, what, target)) from None
    return cast(dict[str, Any], obj)


def _has_rollouts(target: Target, namespace: str) -> bool:
    """Whether the server serves the Rollout collection: a 404 without details may come from a
    proxy or an emulator that leaves them out, and must not read as "Sluice is not installed"."""
    try:
        target.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, ROLLOUTS, limit=1, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as e:
        return bool(e.status != 404)
    except (urllib3.exceptions.HTTPError, OSError):
        return True  # cannot tell; "not found" is the safer of the two answers
    return True


def list_rollouts(target: Target, all_namespaces: bool = False) -> list[dict[str, Any]]:
    """Every Rollout in the namespace (or in all of them), sorted by namespace and name."""
    what = "list rollouts" + ("" if all_namespaces else f" in namespace {target.namespace}")
    with api_errors(what, target):
        if all_namespaces:
            doc = target.custom.list_cluster_custom_object(
                GROUP, VERSION, ROLLOUTS, _request_timeout=REQUEST_TIMEOUT
            )
        else:
            doc = target.custom.list_namespaced_custom_object(
                GROUP, VERSION, target.namespace, ROLLOUTS, _request_timeout=REQUEST_TIMEOUT
            )
    raw: Any = doc
    items = [i for i in (raw or {}).get("items") or [] if isinstance(i, dict)]
    if not all_namespaces:
        items = [i for i in items if i["metadata"].get("namespace") == target.namespace]
    return sorted(items, key=lambda i: (i["metadata"].get("namespace", ""), i["metadata"]["name"]))


def duration_callback(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    """A ``--timeout``-style option in the Rollout's own duration syntax (30s, 10m, 1h)."""
    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


kubeconfig_option = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    help="Path to the kubeconfig (default: $KUBECONFIG, then ~/.kube/config).",
)
context_option = click.option(
    "--context", default=None, help="The kubeconfig context (default: current)."
)


def cluster_options(command: F) -> F:
    """``--kubeconfig``, ``--context`` and ``-n/--namespace``; the command receives ``target``.

    The connection is opened lazily by :func:`target_from`, so ``--help`` works without a cluster.
    """

    @kubeconfig_option
    @context_option
    @click.option(
        "-n",
        "--namespace",
        default=None,
        help="Namespace (default: the context's namespace, else default).",
    )
    @functools.wraps(command)
    def wrapper(
        *args: Any, kubeconfig: str | None, context: str | None, namespace: str | None, **kw: Any
    ) -> Any:
        target = connect(kubeconfig, context, namespace)
        try:
            return command(*args, target=target, **kw)
        finally:
            target.close()

    return cast(F, wrapper)


class RolloutDeleted(CliError):
    """The Rollout someone was following was deleted meanwhile."""


def follow_rollout(
    target: Target,
    name: str,
    namespace: str | None = None,
    *,
    timeout: float | None,
    interval: float = 2.0,
    poll: bool = False,
) -> Iterator[dict[str, Any]]:
    """The Rollout now, then again each time it changes, for ``timeout`` seconds (None: until the
    caller stops); raises :class:`RolloutDeleted` if it goes away meanwhile.

    Watching shows every change as it happens without asking the API server over and over. A
    watch the user may not make (RBAC grants ``get`` but not ``watch``) or one the server refuses
    falls back to a ``get`` every ``interval`` seconds; so does ``poll=True``. A watch that ends
    (server timeout, a silent stream, 410 Gone, a 5xx) is followed by a ``get`` to resynchronise
    and then reopened from there. The name is also checked client-side: not every server (nor
    kmock's emulator) honours field selectors.
    """
    ns = namespace or target.namespace
    deadline = math.inf if timeout is None else time.monotonic() + max(timeout, 0.0)
    doc = get_rollout(target, name, ns)
    yield doc
    seen = _version(doc)
    watching = not poll
    while (remaining := deadline - time.monotonic()) > 0:
        if watching:
            try:
                for changed in _watch(target, name, ns, seen, remaining):
                    seen = _version(changed)
                    yield changed
                    if time.monotonic() >= deadline:
                        return
            except ApiException as e:
                if e.status in (401, 403, 405, 501) or not e.status:
                    watching = False  # no permission to watch (or no watch here): poll instead
                # other answers (410 Gone, 5xx): resynchronise with a get below
            except (urllib3.exceptions.HTTPError, OSError):
                pass  # the stream broke or stayed silent past its read timeout: get and go on
        else:
            time.sleep(min(interval, max(remaining, 0.0)))
        if time.monotonic() >= deadline:
            return
        doc = get_existing_rollout(target, name, ns)
        if _version(doc) != seen:
            seen = _version(doc)
            yield doc


def get_existing_rollout(target: Target, name: str, ns: str) -> dict[str, Any]:
    """The Rollout, known to have existed: a 404 now means it was deleted."""
    what = f"rollout {ns}/{name}"
    try:
        obj = target.custom.get_namespaced_custom_object(
            GROUP, VERSION, ns, ROLLOUTS, name, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as e:
        if e.status == 404:
            raise RolloutDeleted(f"{what} was deleted") from None
        raise CliError(describe(e, what, target)) from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise CliError(describe(e, what, target)) from None
    return cast(dict[str, Any], obj)


def _version(doc: dict[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("resourceVersion") or "")


def _watch(
    target: Target, name: str, ns: str, since: str, remaining: float
) -> Iterator[dict[str, Any]]:
    """One watch of the Rollout from resourceVersion ``since``, for at most ``remaining`` s."""
    seconds = max(1, int(min(remaining, 299.0)) + 1)
    stream = kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
        target.custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        ns,
        ROLLOUTS,
        field_selector=f"metadata.name={name}",
        resource_version=since or None,
        timeout_seconds=seconds,
        # a read timeout ends a silent watch in time for the caller's deadline
        _request_timeout=(REQUEST_TIMEOUT, max(min(remaining, 30.0), 0.1)),
    )
    for event in stream:
        obj = event.get("object")
        if not isinstance(obj, dict) or (obj.get("metadata") or {}).get("name") != name:
            continue
        if event.get("type") == "DELETED":
            raise RolloutDeleted(f"rollout {ns}/{name} was deleted")
        yield obj
