"""Reads a namespace's notification ConfigMap and Secret, on demand, from the sender's threads.

Read on demand, not watched: notifications are rare (a handful per rollout), so reading keeps
the controller's memory and watches free of every namespace's ConfigMaps. What was read (or
refused) is kept for ``ttl`` seconds per namespace: a fleet of 1,000 Rollouts changing at once
(one new image for all) would otherwise GET the same ConfigMap 1,000 times, and the GETs, not
the messages, would fill the sender's queue. An edit takes effect within ``ttl``. Only objects
named ``sluice-notifications`` are read, which a per-namespace Role can grant by name
(deploy/rbac/notifications-reader.yaml).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import kubernetes

from rollouts.api.rollout import NOTIFICATIONS_OBJECT, NotificationSubscription, Rollout
from rollouts.notifications.config import (
    NotificationConfigError,
    NotificationsForbidden,
    parse_defaults,
    subscriptions_for,
)
from rollouts.notifications.sender import Target
from rollouts.notifications.transitions import Notice

GRANT = "deploy/rbac/notifications-reader.yaml"
log = logging.getLogger("sluice.notifications")


class ReadFailed(NotificationConfigError):
    """Reading failed for a reason that may pass (a 5xx, a 429): never kept."""


#: How long a namespace's ConfigMap and Secret, or the refusal to read them, are reused.
DEFAULT_TTL_SECONDS = 10.0


class KubeNotificationConfig:
    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        timeout: float,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.timeout = timeout
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        # (what, namespace) -> (read at, the answer or the exception it raised)
        self._kept: dict[tuple[str, str], tuple[float, Any]] = {}

    def defaults(self, namespace: str) -> list[NotificationSubscription]:
        """The namespace's default subscriptions (none without the ConfigMap)."""
        result: list[NotificationSubscription] = self._kept_or_read(
            "defaults", namespace, self._read_defaults
        )
        return result

    def receivers(self, namespace: str) -> dict[str, str]:
        """Receiver name → apprise URL(s), from the Secret (empty without it)."""
        result: dict[str, str] = self._kept_or_read("receivers", namespace, self._read_receivers)
        return result

    def _kept_or_read(self, what: str, namespace: str, read: Callable[[str], Any]) -> Any:
        """A refusal (403, bad data) is kept like an answer: asking again within ``ttl`` would
        only get it again. A transient failure (the API server down, a timeout) is not kept."""
        now = self.clock()
        key = (what, namespace)
        with self._lock:
            kept = self._kept.get(key)
        if kept is None or now - kept[0] >= self.ttl:
            try:
                answer: Any = read(namespace)
            except ReadFailed:
                raise
            except NotificationConfigError as e:  # a refusal, or objects that cannot be used
                answer = e
            with self._lock:
                if len(self._kept) > 4096:  # namespaces come and go: forget the stale ones
                    self._kept = {k: v for k, v in self._kept.items() if now - v[0] < self.ttl}
                self._kept[key] = (now, answer)
        else:
            answer = kept[1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _read_defaults(self, namespace: str) -> list[NotificationSubscription]:
        try:
            cm: Any = self.core.read_namespaced_config_map(
                NOTIFICATIONS_OBJECT, namespace, _request_timeout=self.timeout
            )
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return []
            raise self._refused("ConfigMap", namespace, e) from None
        return parse_defaults(cm.data)

    def _read_receivers(self, namespace: str) -> dict[str, str]:
        try:
            secret: Any = self.core.read_namespaced_secret(
                NOTIFICATIONS_OBJECT, namespace, _request_timeout=self.timeout
            )
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return {}
            raise self._refused("Secret", namespace, e) from None
        out = {k: v for k, v in (secret.string_data or {}).items()}
        for key, value in (secret.data or {}).items():
            try:
                out[key] = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise NotificationConfigError(
                    f"Secret {NOTIFICATIONS_OBJECT}: data.{key}: not base64 of UTF-8 text"
                ) from None
        return out

    @staticmethod
    def _refused(kind: str, namespace: str, e: kubernetes.client.ApiException) -> Exception:
        if e.status == 403:
            return NotificationsForbidden(
                f"the controller may not read {kind} {NOTIFICATIONS_OBJECT} in namespace "
                f"{namespace}: apply {GRANT} there (docs/notifications.md)"
            )
        return ReadFailed(
            f"reading {kind} {NOTIFICATIONS_OBJECT} in namespace {namespace} failed: "
            f"{e.status} {e.reason}"
        )


class NotificationConfig(Protocol):
    def defaults(self, namespace: str) -> list[NotificationSubscription]: ...

    def receivers(self, namespace: str) -> dict[str, str]: ...


def resolver(config: NotificationConfig) -> Callable[[Rollout, Notice], list[Target]]:
    """The sender's Resolve over the cluster: subscriptions, then the Secret only if any wants
    the notice.

    A Rollout that says nothing about notifications looks for namespace defaults; in a namespace
    without the Role that lets the controller read them, that is "no defaults", not a failure:
    otherwise every Rollout in every namespace that never wanted notifications would post a
    Warning Event on each transition. A Rollout that asks for the defaults, or names receivers
    (so the Secret must be read), gets the failure reported."""

    def resolve(rollout: Rollout, notice: Notice) -> list[Target]:
        ns = rollout.metadata.namespace
        asked = rollout.spec.notifications is not None

        def defaults() -> list[NotificationSubscription]:
            try:
                return config.defaults(ns)
            except NotificationsForbidden:
                if asked:
                    raise
                log.debug("no notification defaults readable in namespace %s", ns)
                return []

        subs = [s for s in subscriptions_for(rollout, defaults) if s.wants(notice.event)]
        if not subs:
            return []
        urls = config.receivers(ns)
        return [
            Target(s.receiver, urls[s.receiver])
            if s.receiver in urls
            else Target(
                s.receiver,
                None,
                f"Secret {NOTIFICATIONS_OBJECT} in namespace {ns} has no key {s.receiver}",
            )
            for s in subs
        ]

    return resolve
