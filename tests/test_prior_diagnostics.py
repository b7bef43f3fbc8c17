"""The localization figures of `parrot prior-viz`: the sideways miss at the first close and
the reaching error of a prior's mode against the scripted policy."""

import numpy as np
import pytest

pytest.importorskip("pybullet")
from sim.env import EnvConfig, ParrotEnv  # noqa: E402
from sim.prior_diagnostics import (first_close_miss, horizontal_miss, reaching_error,  # noqa: E402
                                   summarize_misses)


def info(ee, objects):
    return {"ee_pos": np.array(ee), "object_names": list(objects),
            "object_positions": {k: np.array(v) for k, v in objects.items()}}


def test_miss_is_horizontal_distance_to_the_nearest_object():
    """Height does not count; the nearest of several objects does."""
    i = info([0.40, 0.00, 0.20], {"a": [0.43, 0.04, 0.02], "b": [0.30, 0.00, 0.02]})
    assert horizontal_miss(i) == pytest.approx(0.05)


def test_only_the_first_close_command_counts():
    """An open or hold command records nothing; the first close is kept over later ones."""
    near = info([0.40, 0.0, 0.1], {"a": [0.41, 0.0, 0.02]})
    far = info([0.20, 0.0, 0.1], {"a": [0.41, 0.0, 0.02]})
    hold, close = np.zeros(7), np.r_[np.zeros(6), -1.0]
    miss = first_close_miss(far, hold, None)
    assert miss is None
    miss = first_close_miss(near, close, miss)
    assert miss == pytest.approx([0.01, 0.0])
    assert first_close_miss(far, close, miss) == pytest.approx([0.01, 0.0])
    s = summarize_misses([np.array([0.01, 0.0]), None, np.array([0.03, -0.04])])
    assert s["closed"] == 2 and s["median_miss_m"] == pytest.approx(0.03)
    assert s["within_2cm"] == 0.5
    # split by axis: x is the default camera's depth, y sideways in its image
    assert s["median_abs_dx_m"] == pytest.approx(0.02) and s["median_abs_dy_m"] == pytest.approx(0.02)


def test_reaching_error_of_a_prior_that_does_nothing_is_the_scripted_motion():
    """A 'prior' whose mode is always 0 is wrong by exactly the scripted action: its error
    is the (non-zero) size of the reaching moves, measured over reaching steps only."""
    with ParrotEnv(EnvConfig(task="grasp", objects="heldout", terminate_on_success=False)) as env:
        err = reaching_error(env, lambda obs, info: np.zeros(7, np.float32), episodes=2, seed=10_000)
    assert err.steps > 4
    assert 0.05 < max(err.median_abs_dx, err.median_abs_dy) <= 0.9
    assert err.as_dict()["median_abs_dx_m"] > 0
