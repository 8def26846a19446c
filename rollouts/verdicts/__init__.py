"""The analysis port the engine sees (``port``), and what answers it: scripted outcomes or AnalysisRuns."""
