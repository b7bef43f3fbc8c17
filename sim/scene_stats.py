"""How large objects appear in the policy's observation, and whether the arm hides them.

    parrot render-scene --stats [--scenes 200] [--seed 0] [--image-size 48]

For each pool (train, heldout), ``scenes`` pick_place scenes with seeds ``seed ... seed +
scenes - 1`` are built and measured at the start pose from PyBullet's segmentation mask:

* object width in px: sqrt of the object's mask area, and the larger side of its mask's
  bounding box, both in a render without the arm (what the object itself covers; other
  objects and the tray walls still hide parts of it);
* occlusion by the gripper: object pixels in the arm-free render that the arm covers in the
  real one (an object counts as occluded if the arm hides any of its pixels);
* in view: every vertex of each object's mesh, and the corners of the tray and target pad,
  project inside the image;
* px/m: image distance of two table points 10 cm apart, along x and along y, at the centre
  of the object spawn region;
* at the close: with the TCP placed (by IK, not simulated) over the scene's first object at
  the height where the scripted policy closes, the pixels whose colour changes when the TCP
  moves from 2 to 4 cm beside the object along x (towards / away from the default camera)
  and along y (sideways): how well the image tells a near miss from a farther one in each
  direction; and the share of the object's arm-free pixels still visible with the TCP
  aligned over it.

The figures are printed as a table per pool (median and 10th percentile over all objects).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pybullet as p

STATS_TASK = "pick_place"  # has the tray, so the tray's framing is measured too
FAR_AWAY = (0.0, 0.0, -10.0)  # where the arm goes for the arm-free render (below the table)
CLOSE_HEIGHT_M = 0.045  # TCP height of the scripted first close (median over grasps)
NEAR_MISS_M, FAR_MISS_M = 0.02, 0.04  # the scripted close threshold, and twice it
CHANGED = 10  # a pixel "changes" when a channel moves by more than this (of 255)


class SceneStatsError(ValueError):
    """Bad scene-statistics request."""


@contextmanager
def arm_removed(env):
    """Move the arm out of sight (not simulated meanwhile) and put it back."""
    c = dict(physicsClientId=env.client)
    pos, orn = p.getBasePositionAndOrientation(env.robot.id, **c)
    p.resetBasePositionAndOrientation(env.robot.id, FAR_AWAY, orn, **c)
    try:
        yield
    finally:
        p.resetBasePositionAndOrientation(env.robot.id, pos, orn, **c)


@contextmanager
def arm_at(env, tcp_pos):
    """Put the arm (gripper open, pointing down) with its TCP at ``tcp_pos`` by IK, without
    simulating, and back to its joint positions afterwards."""
    from sim.robot import home_joint_positions

    q = env.robot.joint_positions()
    home_joint_positions(env.client, env.robot, pos=tuple(float(v) for v in tcp_pos))
    try:
        yield
    finally:
        env.robot.reset(q)


def close_cues(env, name: str) -> dict:
    """At the close height over object ``name``: pixels that change between a near and a far
    miss along x and along y, and the object's share still visible when aligned."""
    centre = np.asarray(p.getBasePositionAndOrientation(env.bodies[name],
                                                        physicsClientId=env.client)[0])

    def view(dx, dy):
        with arm_at(env, (centre[0] + dx, centre[1] + dy, CLOSE_HEIGHT_M)):
            return env.render_obs().astype(np.int16)

    def changed(near, far):  # pixels that differ between the TCP at two offsets
        return int((np.abs(view(*near) - view(*far)).max(axis=2) > CHANGED).sum())

    cue = {axis: np.mean([changed(sign * NEAR_MISS_M * unit, sign * FAR_MISS_M * unit)
                          for sign in (1, -1)])
           for axis, unit in (("x", np.array([1.0, 0.0])), ("y", np.array([0.0, 1.0])))}
    with arm_removed(env):
        free = int((env.segmentation() == env.bodies[name]).sum())
    with arm_at(env, (centre[0], centre[1], CLOSE_HEIGHT_M)):
        aligned = int((env.segmentation() == env.bodies[name]).sum())
    return {"cue_x": float(cue["x"]), "cue_y": float(cue["y"]),
            "visible_aligned": aligned / max(free, 1)}


def _bbox_side(mask: np.ndarray) -> int:
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return 0
    return int(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)


def _inside(env, points) -> bool:
    uv = env.project(points)
    h, w = env.image_hw
    return bool((uv >= 0).all() and (uv[:, 0] <= w).all() and (uv[:, 1] <= h).all())


def _object_in_view(env, name) -> bool:
    """Every mesh vertex, at the object's current pose, projects inside the image."""
    from sim.objects import mesh_vertices

    pos, orn = p.getBasePositionAndOrientation(env.bodies[name], physicsClientId=env.client)
    rot = np.array(p.getMatrixFromQuaternion(orn)).reshape(3, 3)
    return _inside(env, mesh_vertices(name) @ rot.T + pos)


def _containers_in_view(env) -> bool:
    """The tray's and (if any) the target pad's corners project inside the image."""
    bodies = [env.tray] + ([env.target_pad] if env.target_pad is not None else [])
    corners = []
    for body in bodies:  # AABBs are tight: tray and pad are axis-aligned boxes
        lo, hi = p.getAABB(body, physicsClientId=env.client)
        corners += [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    return _inside(env, corners)


def measure_scene(env, seed: int) -> dict:
    """Per-object pixel figures of one scene at the start pose (see module docstring)."""
    env.reset(seed=seed)
    seg_arm = env.segmentation()
    with arm_removed(env):
        seg_free = env.segmentation()
    objects = []
    for name in env.object_names:
        body = env.bodies[name]
        free = seg_free == body
        area = int(free.sum())
        hidden = int((free & (seg_arm != body)).sum())
        objects.append({"name": name, "area": area, "width": float(np.sqrt(area)),
                        "bbox": _bbox_side(free), "hidden": hidden,
                        "in_view": _object_in_view(env, name)})
    return {"objects": objects, "tray_in_view": _containers_in_view(env),
            "close": close_cues(env, env.object_names[0])}


def px_per_metre(env) -> tuple[float, float]:
    """Image distance (px) per metre on the table, along world x and y, at the spawn centre."""
    from sim.env import OBJECT_REGION

    c = (OBJECT_REGION[0] + OBJECT_REGION[1]) / 2
    d = 0.05
    pts = [[c[0] - d, c[1], 0], [c[0] + d, c[1], 0], [c[0], c[1] - d, 0], [c[0], c[1] + d, 0]]
    uv = env.project(pts)
    return (float(np.linalg.norm(uv[1] - uv[0]) / (2 * d)),
            float(np.linalg.norm(uv[3] - uv[2]) / (2 * d)))


def pool_stats(objects: str, scenes: int = 200, seed: int = 0, image_size: int = 48,
               camera_file=None) -> dict:
    """Summary figures over ``scenes`` scenes of pool ``objects``."""
    from sim.env import EnvConfig, ParrotEnv

    if scenes < 1:
        raise SceneStatsError("--scenes must be >= 1")
    with ParrotEnv(EnvConfig(task=STATS_TASK, objects=objects, image_size=image_size,
                             camera_file=camera_file)) as env:
        results = [measure_scene(env, seed + i) for i in range(scenes)]
        ppm = px_per_metre(env)
    objs = [o for r in results for o in r["objects"]]
    width = np.array([o["width"] for o in objs])
    bbox = np.array([o["bbox"] for o in objs])
    hidden = np.array([o["hidden"] / max(o["area"], 1) for o in objs])
    return {
        "pool": objects, "scenes": scenes, "objects": len(objs),
        "width_median": float(np.median(width)), "width_p10": float(np.percentile(width, 10)),
        "bbox_median": float(np.median(bbox)), "bbox_p10": float(np.percentile(bbox, 10)),
        "occluded_frac": float((hidden > 0).mean()), "hidden_px_frac": float(hidden.mean()),
        "objects_in_view": float(np.mean([o["in_view"] for o in objs])),
        "tray_in_view": float(np.mean([r["tray_in_view"] for r in results])),
        "px_per_m_x": ppm[0], "px_per_m_y": ppm[1],
        "cue_x_median": float(np.median([r["close"]["cue_x"] for r in results])),
        "cue_y_median": float(np.median([r["close"]["cue_y"] for r in results])),
        "visible_aligned_median": float(np.median([r["close"]["visible_aligned"] for r in results])),
    }


COLUMNS = [  # (header, key, format)
    ("pool", "pool", "{}"), ("scenes", "scenes", "{}"), ("objects", "objects", "{}"),
    ("width med", "width_median", "{:.1f}"), ("width p10", "width_p10", "{:.1f}"),
    ("bbox med", "bbox_median", "{:.0f}"), ("bbox p10", "bbox_p10", "{:.0f}"),
    ("occluded", "occluded_frac", "{:.1%}"), ("hidden px", "hidden_px_frac", "{:.2%}"),
    ("objs in view", "objects_in_view", "{:.1%}"), ("tray+pad in view", "tray_in_view", "{:.1%}"),
    ("px/m x", "px_per_m_x", "{:.0f}"), ("px/m y", "px_per_m_y", "{:.0f}"),
    ("close: x cue", "cue_x_median", "{:.0f}"), ("y cue", "cue_y_median", "{:.0f}"),
    ("visible aligned", "visible_aligned_median", "{:.0%}"),
]


def format_table(rows: list[dict]) -> str:
    cells = [[h for h, _, _ in COLUMNS]] + [[f.format(r[k]) for _, k, f in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])
