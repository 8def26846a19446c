"""Anytime-valid sequential tests: the one import for the controller and the benchmark.

Every class here is vectorised over a batch of independent runs (``batch`` at construction,
inputs of shape ``(batch,)``), updated incrementally once per interval in log space, and may be
looked at after every update without inflating its false-alarm rate (Ville's inequality). The
implementations live in small modules named for what they own; this module only gathers them.
"""

from analysis.stats.count_eprocess import RateRatioEProcess
from analysis.stats.histogram import HistogramEProcess, choose_edges
from analysis.stats.msprt import NormalMixtureSPRT
from analysis.stats.sample_ratio import SampleRatioCheck

__all__ = [
    "HistogramEProcess",
    "NormalMixtureSPRT",
    "RateRatioEProcess",
    "SampleRatioCheck",
    "choose_edges",
]
