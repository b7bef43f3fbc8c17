"""Object pools: sizes, names, a fixed disjoint train/held-out split."""

from sim.objects import POOLS, ObjectPoolError, object_spec, pool, pool_of
import pytest


def test_pools_are_large_disjoint_and_fixed():
    """>= 50 train and >= 10 held-out objects, no overlap, stable names and order."""
    train, heldout = set(pool("train")), set(pool("heldout"))
    assert len(train) >= 50 and len(heldout) >= 10
    assert not train & heldout
    assert POOLS["train"][:3] == ("rand_003", "rand_029", "rand_030")
    assert POOLS["heldout"][0] == "rand_805"
    assert pool_of("rand_805") == "heldout" and pool_of("rand_003") == "train"
    with pytest.raises(ObjectPoolError):
        pool("test")


def test_objects_scaled_to_fit_the_gripper():
    """Every object's largest extent is 5 cm (the pads open to 89 mm)."""
    for name in POOLS["train"][:10] + POOLS["heldout"][:5]:
        s = object_spec(name)
        assert max(s["half_extents"]) * 2 == pytest.approx(0.05, rel=1e-6)
