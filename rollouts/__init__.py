"""Sluice: progressive delivery for Kubernetes with anytime-valid canary analysis."""
