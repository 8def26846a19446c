"""Notifications on rollout transitions: derived from status (pure), sent off the reconcile path."""
