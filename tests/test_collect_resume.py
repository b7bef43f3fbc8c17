"""`parrot collect --resume`: an interrupted collection finishes with the dataset an
uninterrupted one writes -- no seed twice, none missing -- even when the kill fell between
writing an episode and recording its attempt."""

import json

import numpy as np

from parrot_core.dataset import attempted_seeds, load_episodes
from sim.collect import run_collection


def by_seed(root) -> dict[int, np.ndarray]:
    return {int(e.attrs["seed"]): e.actions for e in load_episodes(root)}


def test_resume_finishes_exactly_the_missing_seeds(tmp_path):
    """Collect 2 of 4 episodes, then --resume 4: the same episodes as collecting 4 at once."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_collection("grasp", 4, 1, whole, seed=500, progress=False)
    run_collection("grasp", 2, 1, parts, seed=500, progress=False)
    assert attempted_seeds(parts) == {500, 501}
    counts = run_collection("grasp", 4, 2, parts, seed=500, progress=False, resume=True)
    assert sum(c["attempted"] for c in counts.values()) == 2
    assert attempted_seeds(parts) == {500, 501, 502, 503}
    a, b = by_seed(whole), by_seed(parts)
    assert sorted(a) == sorted(b) and len(a) >= 2
    for s in a:
        np.testing.assert_array_equal(a[s], b[s])
    assert run_collection("grasp", 4, 1, parts, seed=500, progress=False, resume=True) == {}


def test_episode_written_but_not_yet_counted_is_not_collected_again(tmp_path):
    """A kill after an episode file was renamed into place but before its attempt was
    recorded: --resume still knows that seed (from the file) and does not write it twice."""
    out = tmp_path / "d"
    run_collection("grasp", 2, 1, out, seed=0, progress=False)
    kept = load_episodes(out)
    assert kept, "scripted grasp kept no episode of seeds 0-1"
    last_seed = int(kept[-1].attrs["seed"])
    # undo the bookkeeping of the last attempt, as a kill right after the rename would
    stats = next((out / "stats").glob("*.json"))
    s = json.loads(stats.read_text())
    s["attempted"] -= 1
    s["kept"] -= 1
    stats.write_text(json.dumps(s))
    seeds_file = stats.with_suffix(".seeds")
    lines = seeds_file.read_text().splitlines()
    seeds_file.write_text("\n".join(ln for ln in lines if int(ln) != last_seed) + "\n")
    assert last_seed in attempted_seeds(out)
    run_collection("grasp", 2, 1, out, seed=0, progress=False, resume=True)
    seeds = [int(e.attrs["seed"]) for e in load_episodes(out)]
    assert len(seeds) == len(set(seeds)) == len(kept)
