"""The AnalysisRun store: its port and its Kubernetes and in-memory adapters, side by side."""
