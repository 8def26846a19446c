"""Reads a namespace's notification ConfigMap and Secret, on demand, from the sender's threads.

Read per delivery, not watched: notifications are rare (a handful per rollout), so a GET each
time keeps the controller's memory and watches free of every namespace's ConfigMaps, and an edit
takes effect with the next message. Only objects named ``sluice-notifications`` are read, which a
per-namespace Role can grant by name (deploy/rbac/notifications-reader.yaml).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import kubernetes

from rollouts.api.rollout import NOTIFICATIONS_OBJECT, NotificationSubscription, Rollout
from rollouts.notifications.config import (
    NotificationConfigError,
    parse_defaults,
    subscriptions_for,
)
from rollouts.notifications.sender import Target
from rollouts.notifications.transitions import Notice

GRANT = "deploy/rbac/notifications-reader.yaml"


class KubeNotificationConfig:
    def __init__(self, api: kubernetes.client.ApiClient, timeout: float) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.timeout = timeout

    def defaults(self, namespace: str) -> list[NotificationSubscription]:
        """The namespace's default subscriptions (none without the ConfigMap)."""
        try:
            cm: Any = self.core.read_namespaced_config_map(
                NOTIFICATIONS_OBJECT, namespace, _request_timeout=self.timeout
            )
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return []
            raise self._refused("ConfigMap", namespace, e) from None
        return parse_defaults(cm.data)

    def receivers(self, namespace: str) -> dict[str, str]:
        """Receiver name → apprise URL(s), from the Secret (empty without it)."""
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
            return NotificationConfigError(
                f"the controller may not read {kind} {NOTIFICATIONS_OBJECT} in namespace "
                f"{namespace}: apply {GRANT} there (docs/notifications.md)"
            )
        return NotificationConfigError(
            f"reading {kind} {NOTIFICATIONS_OBJECT} in namespace {namespace} failed: "
            f"{e.status} {e.reason}"
        )


def resolver(config: KubeNotificationConfig) -> Callable[[Rollout, Notice], list[Target]]:
    """The sender's Resolve over the cluster: subscriptions, then the Secret only if any wants
    the notice."""

    def resolve(rollout: Rollout, notice: Notice) -> list[Target]:
        ns = rollout.metadata.namespace
        subs = [
            s
            for s in subscriptions_for(rollout, lambda: config.defaults(ns))
            if s.wants(notice.event)
        ]
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
