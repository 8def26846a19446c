"""Who gets which transition: a Rollout's own subscriptions and its namespace's defaults.

Namespace defaults live in a ConfigMap named ``sluice-notifications``, receiver URLs in a Secret
of the same name, both in the Rollout's namespace (docs/notifications.md says why a ConfigMap and
not a CRD). This module parses and combines; reading them from the cluster is ``kube.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from analysis.api_conventions import FieldProblem, problems_of
from rollouts.api.rollout import (
    NOTIFICATIONS_OBJECT,
    NotificationSubscription,
    Rollout,
    unique_receivers,
)

DEFAULTS_KEY = "subscriptions"
"""The ConfigMap's one data key: a YAML list of subscriptions, as in spec.notifications."""


class NotificationConfigError(ValueError):
    """The namespace's notification objects cannot be used; the message names the field."""


class NotificationsForbidden(NotificationConfigError):
    """The controller may not read the namespace's notification objects (no Role there)."""


def parse_defaults(data: Mapping[str, Any] | None) -> list[NotificationSubscription]:
    """The namespace default subscriptions from the ConfigMap's ``data``."""
    where = f"ConfigMap {NOTIFICATIONS_OBJECT}: data"
    data = data or {}
    unknown = sorted(set(data) - {DEFAULTS_KEY})
    if unknown:
        raise NotificationConfigError(
            f"{where}.{unknown[0]}: unknown key (expected only {DEFAULTS_KEY})"
        )
    raw = data.get(DEFAULTS_KEY)
    if raw is None or raw == "":
        return []
    try:
        doc = yaml.safe_load(raw) if isinstance(raw, str) else raw
    except yaml.YAMLError as e:
        raise NotificationConfigError(f"{where}.{DEFAULTS_KEY}: not YAML ({e})") from None
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise NotificationConfigError(
            f"{where}.{DEFAULTS_KEY}: must be a list of {{receiver, events}}"
        )
    out = []
    problems: list[str] = []
    for i, item in enumerate(doc):
        try:
            out.append(NotificationSubscription.model_validate(item))
        except ValidationError as e:
            problems += problems_of(e, (f"{DEFAULTS_KEY}[{i}]",))
    if problems:
        raise NotificationConfigError(f"{where}.{'; '.join(problems)}")
    try:
        unique_receivers(out)
    except FieldProblem as e:
        index, _, field = e.field.partition(".")
        raise NotificationConfigError(
            f"{where}.{DEFAULTS_KEY}[{index}].{field}: {e.message}"
        ) from None
    return out


def subscriptions_for(
    rollout: Rollout, defaults: Callable[[], list[NotificationSubscription]]
) -> list[NotificationSubscription]:
    """The Rollout's subscriptions: its own, plus (or, without spec.notifications, only) the
    namespace's. ``defaults`` is called only when needed, so a Rollout that says where its
    notifications go costs no ConfigMap read. Its own entry for a receiver wins."""
    own = rollout.spec.notifications
    subs = list(own.subscriptions) if own is not None else []
    if own is None or own.namespace_defaults:
        mine = {s.receiver for s in subs}
        subs += [d for d in defaults() if d.receiver not in mine]
    return subs
