"""Object pools: procedural objects from pybullet_data's ``random_urdfs``, fixed split.

Of the 1000 procedural meshes we use those that are cheap to draw (<= 320 triangles:
TinyRenderer cost is in triangles) and not flat or needle-like (smallest / largest extent
>= 0.35), 126 in all. The split is by index and never changes:

* ``train``: the 104 eligible objects with index < 800, named ``rand_003`` ... ``rand_792``
* ``heldout``: the 22 eligible objects with index >= 800, ``rand_805`` ... ``rand_999``

Held-out objects never enter training data (``parrot collect`` refuses them).
Every object is scaled so its largest extent is ``OBJECT_SIZE_M`` (the xArm gripper opens
to 89 mm between the pads), weighs 0.1 kg and keeps the colour its URDF gives it.
``python -m sim.objects`` re-derives the lists from pybullet_data and checks them.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pybullet as p

OBJECT_SIZE_M = 0.05
OBJECT_MASS_KG = 0.1
MAX_TRIANGLES = 320
MIN_ASPECT = 0.35
HELDOUT_FROM_INDEX = 800

_ELIGIBLE = [
    3, 29, 30, 49, 56, 63, 67, 97, 100, 102, 103, 111, 128, 137, 140, 150, 152, 153, 160, 171,
    210, 214, 217, 218, 240, 243, 250, 255, 261, 266, 271, 273, 279, 287, 288, 308, 330, 331,
    336, 345, 347, 348, 356, 371, 380, 382, 388, 393, 398, 406, 407, 408, 409, 412, 424, 431,
    436, 438, 450, 453, 457, 458, 463, 482, 484, 490, 501, 502, 506, 508, 542, 548, 556, 559,
    560, 566, 571, 581, 591, 593, 611, 621, 623, 628, 633, 638, 642, 645, 656, 666, 670, 677,
    679, 697, 711, 727, 735, 740, 766, 767, 786, 789, 791, 792, 805, 810, 818, 821, 829, 843,
    856, 893, 894, 900, 901, 937, 943, 953, 959, 968, 978, 983, 993, 994, 997, 999,
]
POOLS = {
    "train": tuple(f"rand_{i:03d}" for i in _ELIGIBLE if i < HELDOUT_FROM_INDEX),
    "heldout": tuple(f"rand_{i:03d}" for i in _ELIGIBLE if i >= HELDOUT_FROM_INDEX),
}


class ObjectPoolError(ValueError):
    """Unknown object pool or object name."""


def pool(name: str) -> tuple[str, ...]:
    if name not in POOLS:
        raise ObjectPoolError(f"unknown object pool {name!r}; choose one of {sorted(POOLS)}")
    return POOLS[name]


def pool_of(object_name: str) -> str:
    for name, names in POOLS.items():
        if object_name in names:
            return name
    raise ObjectPoolError(f"{object_name!r} is in no object pool")


def _data_dir() -> Path:
    import pybullet_data
    return Path(pybullet_data.getDataPath()) / "random_urdfs"


def _index(object_name: str) -> int:
    m = re.fullmatch(r"rand_(\d{3})", object_name)
    if not m:
        raise ObjectPoolError(f"bad object name {object_name!r} (expected rand_NNN)")
    return int(m.group(1))


def _read_obj(path: Path) -> tuple[np.ndarray, int]:
    verts, faces = [], 0
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            faces += 1
    return np.array(verts), faces


@functools.lru_cache(maxsize=None)
def object_spec(object_name: str) -> dict:
    """Mesh path, mesh scale, centre offset and colour of one object (cached per process)."""
    i = _index(object_name)
    d = _data_dir() / f"{i:03d}"
    mesh = d / f"{i:03d}.obj"
    verts, _ = _read_obj(mesh)
    lo, hi = verts.min(0), verts.max(0)
    scale = OBJECT_SIZE_M / float((hi - lo).max())
    rgba = [0.6, 0.6, 0.6, 1.0]
    m = re.search(r'rgba="([^"]+)"', (d / f"{i:03d}.urdf").read_text())
    if m:
        rgba = [float(x) for x in m.group(1).split()]
    return {"mesh": str(mesh), "scale": scale, "centre": ((lo + hi) / 2 * scale).tolist(),
            "half_extents": ((hi - lo) / 2 * scale).tolist(), "rgba": rgba}


def load_object(client: int, object_name: str, pos, orn) -> int:
    """Create the object as a rigid body (convex-hull collision) centred at ``pos``."""
    s = object_spec(object_name)
    c = dict(physicsClientId=client)
    scale = [s["scale"]] * 3
    offset = [-x for x in s["centre"]]  # put the bounding-box centre at the body origin
    col = p.createCollisionShape(p.GEOM_MESH, fileName=s["mesh"], meshScale=scale,
                                 collisionFramePosition=offset, **c)
    vis = p.createVisualShape(p.GEOM_MESH, fileName=s["mesh"], meshScale=scale,
                              visualFramePosition=offset, rgbaColor=s["rgba"], **c)
    body = p.createMultiBody(OBJECT_MASS_KG, col, vis, pos, orn, **c)
    p.changeDynamics(body, -1, lateralFriction=1.0, spinningFriction=0.002, rollingFriction=0.0005,
                     **c)
    return body


def derive_pools() -> dict:
    """Re-derive the eligible indices from pybullet_data (slow: reads 1000 meshes)."""
    eligible = []
    for i in range(1000):
        verts, faces = _read_obj(_data_dir() / f"{i:03d}" / f"{i:03d}.obj")
        if len(verts) == 0 or not np.isfinite(verts).all():
            continue
        e = np.sort(verts.max(0) - verts.min(0))
        if faces <= MAX_TRIANGLES and e[0] / e[2] > MIN_ASPECT:
            eligible.append(i)
    return eligible


if __name__ == "__main__":
    derived = derive_pools()
    assert derived == _ELIGIBLE, "pybullet_data's random_urdfs changed; update _ELIGIBLE"
    print({k: len(v) for k, v in POOLS.items()}, "pools match pybullet_data")
