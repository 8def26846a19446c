"""Fixtures for the analysis integration tests: the session's real Prometheus."""

from tests.support.prometheus import prometheus

__all__ = ["prometheus"]
