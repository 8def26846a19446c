"""``sluice simulate``: a rollout on an in-memory cluster with a simulated clock, its timeline and its plot."""
