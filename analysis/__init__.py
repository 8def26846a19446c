"""Metric analysis for Sluice: statistics (pure), judges, providers. Never imports ``rollouts``."""
