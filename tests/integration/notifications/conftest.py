"""Emulator fixtures for the notification config tests (defined once in tests/support/kube.py)."""

from tests.support import kube as k8s

kube_emulator = k8s.kube_emulator
kubeconfig = k8s.kubeconfig
api_client = k8s.api_client
namespace = k8s.namespace
