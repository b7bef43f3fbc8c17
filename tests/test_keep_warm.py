"""Keep-warm between frames (parrot_core.keep_warm, the policy node's `keep_warm_hz`): the
models rerun on the newest input while no frame comes, and that never changes what the node
publishes."""

from __future__ import annotations

import time

import numpy as np
import pytest

from parrot_core.keep_warm import KeepWarm
from ros_helpers import export_tiny_prior


def wait_for(cond, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return False


def test_keep_warm_runs_while_idle_and_stops_on_close():
    calls = []
    warm = KeepWarm(lambda: calls.append(time.monotonic()), period_s=0.002)
    try:
        assert wait_for(lambda: len(calls) >= 5), "no warm-up ran while idle"
    finally:
        warm.close()
    assert not warm._thread.is_alive()
    with pytest.raises(ValueError, match="period must be > 0"):
        KeepWarm(lambda: None, 0.0)


def test_keep_warm_leaves_the_seeded_random_z_sequence_unchanged(tmp_path):
    """Mode `prior` draws z from a seeded generator; warm-ups run z = 0 through the prior and
    never draw, so a node with keep-warm publishes exactly what one without it does."""
    from parrot_bringup.policy_models import Models

    prior = export_tiny_prior(tmp_path / "prior", image_size=16)
    plain = Models("prior", str(prior), "", seed=7)
    warm = Models("prior", str(prior), "", seed=7, keep_warm_hz=500.0)
    rng = np.random.default_rng(0)
    try:
        for _ in range(4):
            image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            first = warm(image)
            assert wait_for(lambda: warm.keep_warm.warmups >= 3), "no warm-up between frames"
            warm.keep_warm.warmups = 0
            np.testing.assert_array_equal(first, plain(image))
    finally:
        warm.close()
        plain.close()
