"""The controller creates its own kopf peering object, so one ``kubectl apply`` installs Sluice.

kopf's peering needs a ``ClusterKopfPeering`` named after the peering (``sluice.dev``); with a
peering name set, kopf waits paused until that object exists. Shipping the object in the
manifests made a fresh install fail: ``kubectl apply`` maps every object before it creates any, and
the object's kind does not exist until its CRD (applied in the same run) is established, so the
apply had to be repeated. The manifests now carry only the CRD, and the controller creates the
object before kopf starts, waiting for the CRD to be served if it was applied a moment ago.

Namespaced mode (``--namespace``) uses kopf's namespaced ``KopfPeering`` objects, one per served
namespace; the Helm chart renders those (its CRDs install before its templates), so they need no
grant to create them here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kubernetes
import urllib3

log = logging.getLogger("sluice.peering")

PEERING_GROUP = "kopf.dev"
PEERING_VERSION = "v1"
CLUSTER_PEERINGS = "clusterkopfpeerings"


class PeeringError(Exception):
    """The API refuses the peering object (RBAC, a rejected body): the message says what to fix."""


def create_cluster_peering(api: kubernetes.client.ApiClient, name: str) -> bool:
    """Create the ClusterKopfPeering ``name``; True if created, False if it existed already.

    Raises ``LookupError`` while its kind is not served (the CRD is missing or not yet
    established), ``PeeringError`` when the API refuses it (403, 400, 422) and
    ``ApiException`` for the rest (server errors: worth retrying).
    """
    body: dict[str, Any] = {
        "apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "sluice"}},
    }
    try:
        kubernetes.client.CustomObjectsApi(api).create_cluster_custom_object(
            PEERING_GROUP, PEERING_VERSION, CLUSTER_PEERINGS, body
        )
    except kubernetes.client.ApiException as e:
        if e.status == 409:  # another replica (or a person) was first
            return False
        if e.status == 404:
            raise LookupError(f"{CLUSTER_PEERINGS}.{PEERING_GROUP} is not served") from None
        if e.status == 403:
            raise PeeringError(
                f"not allowed to create ClusterKopfPeering {name} (grant create on "
                f"{CLUSTER_PEERINGS}.{PEERING_GROUP}, as deploy/base/clusterrole.yaml does)"
            ) from None
        if e.status in (400, 422):
            raise PeeringError(f"ClusterKopfPeering {name} refused: {e.reason}") from None
        raise  # a server error or a timeout: worth another try
    return True


async def ensure_cluster_peering(
    api: kubernetes.client.ApiClient,
    name: str,
    *,
    retry_seconds: float = 2.0,
    stop_flag: asyncio.Event | None = None,
) -> bool:
    """Create the peering object, retrying while its CRD is not served yet.

    Returns True once it exists, False if ``stop_flag`` was set first. Everything else is retried
    too: server errors, an unreachable server, and a refusal (``PeeringError``: RBAC may be fixed
    while the pod waits, as kopf itself waits for its peering), each kind of problem logged once.
    """
    logged: set[str] = set()

    def once(level: int, message: str) -> None:
        if message not in logged:
            logged.add(message)
            log.log(level, message)

    while stop_flag is None or not stop_flag.is_set():
        try:
            created = await asyncio.to_thread(create_cluster_peering, api, name)
        except LookupError as e:
            once(logging.INFO, f"waiting for the peering CRD: {e}")
        except PeeringError as e:
            once(logging.ERROR, f"{e}; retrying every {retry_seconds:g}s")
        except kubernetes.client.ApiException as e:
            once(logging.WARNING, f"creating ClusterKopfPeering {name}: {e.status} {e.reason}")
        except (OSError, urllib3.exceptions.HTTPError) as e:
            once(logging.WARNING, f"creating ClusterKopfPeering {name}: {e}")
        else:
            if created:
                log.info("created ClusterKopfPeering %s", name)
            return True
        try:
            if stop_flag is None:
                await asyncio.sleep(retry_seconds)
            else:
                await asyncio.wait_for(stop_flag.wait(), timeout=retry_seconds)
        except TimeoutError:
            pass
    return False
