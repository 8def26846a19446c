import numpy as np
import pytest

from simulations.schedule import Step, WeightSchedule


def test_stepped_schedule_timeline_follows_steps() -> None:
    s = WeightSchedule.stepped((0.05, 0.25, 0.5), 60)
    w = s.weights(10.0)
    assert w.shape == (18,)
    assert np.all(w[:6] == 0.05) and np.all(w[6:12] == 0.25) and np.all(w[12:] == 0.5)
    assert list(s.step_start_ticks(10.0)) == [0, 6, 12]
    assert s.duration_s == 180


def test_one_pod_weight_is_replica_share() -> None:
    s = WeightSchedule.one_pod(100, 600)
    assert s.steps[0].weight == pytest.approx(0.01)
    assert s.n_ticks(10.0) == 60


@pytest.mark.parametrize("weight", [0.0, 1.0, -0.1])
def test_step_rejects_weights_outside_open_unit_interval(weight: float) -> None:
    with pytest.raises(ValueError):
        Step(weight, 60)
