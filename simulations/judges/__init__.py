"""The judges the benchmark compares: Sluice and the ways canaries are judged today.

Each judge that follows the fixed schedule takes a :class:`~simulations.traffic.Trace` and returns,
per run, the tick at which it stops the rollout (-1 if never). Judges with a knob also return a
copy of themselves tuned to a target A/A false-abort rate, so speed is compared at equal safety.
"""
