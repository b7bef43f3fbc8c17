"""The observation shows the objects (issue 9): in 48x48, objects are >= 8 px across
(median), the gripper at the start pose hides none of them, and tray, pad and objects lie
inside the view, for train and held-out objects alike. `parrot render-scene --stats`
prints the same figures over 200 scenes per pool."""

import pytest

from sim.scene_stats import format_table, pool_stats

SCENES = 25  # 75 objects per pool: ~1 s


@pytest.fixture(scope="module", params=["train", "heldout"])
def stats(request):
    return pool_stats(request.param, scenes=SCENES, seed=0)


def test_objects_at_least_8_px_across(stats):
    """Median sqrt(mask area) >= 8 px and median bounding box >= 10 px; hardly any object
    under 5 px (10th percentile)."""
    assert stats["width_median"] >= 8.0
    assert stats["bbox_median"] >= 10
    assert stats["width_p10"] >= 5.0


def test_gripper_hides_no_object_and_everything_is_in_view(stats):
    assert stats["occluded_frac"] == 0.0
    assert stats["objects_in_view"] == 1.0 and stats["tray_in_view"] == 1.0


def test_table_scale_and_printed_table(stats):
    """About roboverse's 140 px/m across the table; the table names every pool figure."""
    assert stats["px_per_m_y"] > 120 and stats["px_per_m_x"] > 90
    text = format_table([stats])
    assert stats["pool"] in text and "occluded" in text and "width med" in text


def test_stats_cli_prints_both_pools(capsys):
    from parrot_cli.main import main as parrot

    assert parrot(["render-scene", "--stats", "--scenes", "2"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "heldout" in out and "px/m" in out
    assert parrot(["render-scene"]) == 1  # neither --out nor --stats: one clear error
    assert "--out is required" in capsys.readouterr().err
