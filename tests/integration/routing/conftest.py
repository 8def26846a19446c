"""Emulator fixtures for the router tests (defined once in tests/support/kube.py)."""

from tests.support.kube import api_client, kube_emulator, kubeconfig, namespace  # noqa: F401
