"""`parrot collect --ray`: the same dataset as without Ray, a worker's death costs nothing in
the end, and a cluster that is not there is a clear error."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("pybullet")
from parrot_core.dataset import load_episodes  # noqa: E402
from sim.collect import run_collection  # noqa: E402
from sim.ray_collect import RayCollectError  # noqa: E402

KILL_ONCE_ENV = "PARROT_TEST_RAY_KILL_ONCE"


def by_seed(root) -> dict:
    return {e.attrs["seed"]: e for e in load_episodes(root)}


def test_ray_collection_equals_local_collection_even_when_a_worker_dies(tmp_path, monkeypatch):
    """10 mixed episodes on a local 2-CPU Ray instance, one worker killed (os._exit) in its
    first chunk: Ray runs that chunk again, and the dataset has the same episodes (images and
    actions, by seed) and the same attempt counts as one process writes without Ray."""
    monkeypatch.setenv(KILL_ONCE_ENV, str(tmp_path / "killed"))
    local = run_collection("mixed", 10, 1, tmp_path / "local", seed=300, progress=False)
    on_ray = run_collection("mixed", 10, 2, tmp_path / "ray", seed=300, progress=False,
                            ray_address="local")
    assert (tmp_path / "killed").exists()  # a worker did die
    assert on_ray == local
    a, b = by_seed(tmp_path / "local"), by_seed(tmp_path / "ray")
    assert sorted(a) == sorted(b) and len(a) > 0
    for seed in a:
        assert np.array_equal(a[seed].actions, b[seed].actions)
        assert np.array_equal(a[seed].images, b[seed].images)


def test_an_unreachable_cluster_is_named(tmp_path):
    with pytest.raises(RayCollectError, match="cannot reach a Ray cluster at '127.0.0.1:1'"):
        run_collection("grasp", 2, 1, tmp_path / "x", progress=False, ray_address="127.0.0.1:1")
