"""Before ``sluice run`` hands the cluster to kopf: can the API server be reached at all?

kopf retries an unreachable API server nine times over about a minute and then dies with a
traceback per watcher (191 lines of stderr for one wrong kubeconfig). Asked first, the same
problem is one line per attempt and one clear error; a missing CRD is named with the command
that installs it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence

import click
import kubernetes
import urllib3

log = logging.getLogger("sluice.startup")

RETRY_DELAYS: Sequence[float] = (1.0, 2.0, 4.0, 8.0)
"""Seconds between attempts to reach the API server (five attempts, about 15 s)."""

_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


def why(error: BaseException) -> str:
    """The cause of a failed request in a few words (``[Errno 111] Connection refused``)."""
    text = str(error)
    found = _ERRNO.search(text)
    if found:
        return found.group(0).strip()
    if isinstance(error, kubernetes.client.ApiException):
        return f"{error.status} {error.reason}"
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):
        return why(reason)
    return type(error).__name__ + (f": {text}" if text and len(text) < 200 else "")


def load_api_client() -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig; one line if neither."""
    from rollouts.operator import default_api_client

    try:
        return default_api_client()
    except (kubernetes.config.ConfigException, OSError, TypeError, ValueError) as e:
        raise click.ClickException(
            f"no Kubernetes cluster configured: {e} (set KUBECONFIG, or run in a Pod)"
        ) from None


def reach_cluster(
    api: kubernetes.client.ApiClient,
    delays: Sequence[float] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once the API server answers; else one line per failed attempt, then an error."""
    pool = logging.getLogger("urllib3.connectionpool")
    level = pool.level
    pool.setLevel(logging.ERROR)  # its "Retrying (Retry(total=2 ..." lines say nothing more
    try:
        _reach(api, RETRY_DELAYS if delays is None else delays, sleep)
    finally:
        pool.setLevel(level)


def _reach(
    api: kubernetes.client.ApiClient, delays: Sequence[float], sleep: Callable[[float], None]
) -> None:
    host = api.configuration.host
    attempts = len(delays) + 1
    for attempt in range(1, attempts + 1):
        try:
            # discovery of Sluice's own group: answers whether the server is there, lets us in,
            # and serves the CRDs, in one request any authenticated client may make
            kubernetes.client.CustomObjectsApi(api).get_api_resources(
                "sluice.dev", "v1alpha1", _request_timeout=5
            )
        except kubernetes.client.ApiException as e:
            if e.status in (401, 403):
                raise click.ClickException(
                    f"the Kubernetes API at {host} refused Sluice's credentials: "
                    f"{e.status} {e.reason}"
                ) from None
            if e.status == 404:
                raise click.ClickException(
                    f"the Kubernetes API at {host} serves no sluice.dev/v1alpha1: the CRDs are "
                    "not installed (kubectl apply -k deploy/)"
                ) from None
            problem = why(e)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            problem = why(e)
        else:
            return
        if attempt == attempts:
            raise click.ClickException(
                f"cannot reach the Kubernetes API at {host} after {attempts} attempts: {problem} "
                "(check KUBECONFIG and its current context)"
            )
        delay = delays[attempt - 1]
        log.warning(
            "cannot reach the Kubernetes API at %s: %s (attempt %d/%d, next in %gs)",
            host,
            problem,
            attempt,
            attempts,
            delay,
        )
        sleep(delay)
