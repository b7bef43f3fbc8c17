"""Object pools: procedural objects from pybullet_data's ``random_urdfs``, fixed split.

The pool rule: of the 1000 procedural meshes we use those that are

* cheap to draw: <= MAX_TRIANGLES (400) triangles (TinyRenderer's cost is in triangles);
* not flat or needle-like: smallest / largest bounding-box extent > MIN_ASPECT (0.35);
* not a thin sliver: seen from above (as loaded, z up), the silhouette covers at least
  MIN_TOP_COVER (1/4) of the square of the largest extent (``top_cover``). Slivers (L- and
  T-shaped bars) pass the box test but show a few pixels in a 48x48 image and would be
  grasped only by their bars.

147 in all. The split is by index and never changes:

* ``train``: the 113 eligible objects with index < 800, named ``rand_012`` ... ``rand_792``
* ``heldout``: the 34 eligible objects with index >= 800, ``rand_805`` ... ``rand_997``

Held-out objects never enter training data (``parrot collect`` refuses them).
Every object is scaled so its largest extent is ``OBJECT_SIZE_M`` (7 cm: large enough to be
about 8 px across in 48x48, small enough for the xArm gripper, whose pads open to 89 mm),
weighs 0.1 kg and keeps the colour its URDF gives it.
``python -m sim.objects`` re-derives the lists from pybullet_data and checks them.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pybullet as p

OBJECT_SIZE_M = 0.07
OBJECT_MASS_KG = 0.1
MAX_TRIANGLES = 400
MIN_ASPECT = 0.35
MIN_TOP_COVER = 0.25
HELDOUT_FROM_INDEX = 800

_ELIGIBLE = [
    12, 13, 29, 40, 55, 56, 62, 63, 67, 71, 95, 102, 105, 111, 125, 129, 137, 149, 150, 152,
    180, 193, 197, 198, 200, 218, 224, 255, 259, 262, 264, 265, 271, 273, 279, 287, 299, 307,
    308, 310, 312, 331, 336, 343, 344, 345, 347, 348, 349, 356, 367, 382, 383, 393, 394, 396,
    398, 399, 402, 403, 404, 406, 407, 412, 423, 431, 436, 438, 440, 441, 445, 463, 472, 480,
    482, 508, 509, 519, 521, 542, 548, 558, 571, 579, 583, 588, 591, 611, 621, 629, 638, 642,
    645, 650, 656, 659, 663, 677, 679, 680, 692, 695, 708, 713, 724, 727, 735, 740, 745, 747,
    764, 791, 792, 805, 811, 818, 821, 823, 827, 836, 838, 851, 864, 869, 877, 893, 894, 901,
    905, 918, 927, 937, 943, 947, 951, 956, 959, 964, 967, 968, 978, 979, 984, 993, 994, 995,
    997,
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


def _read_obj(path: Path) -> tuple[np.ndarray, list]:
    """Vertices (N, 3) and faces (lists of 0-based vertex indices) of a Wavefront OBJ."""
    verts, faces = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            faces.append([int(t.split("/")[0]) - 1 for t in line.split()[1:]])
    return np.array(verts), faces


def top_cover(verts: np.ndarray, faces: list, grid: int = 64) -> float:
    """Area of the mesh's silhouette seen from above, as a fraction of S x S (S: largest extent).

    Rasterised on a ``grid`` x ``grid`` raster of the S x S square; an object resting as
    loaded (z up) shows about this much of itself to a camera looking down.
    """
    import cv2

    lo = verts.min(0)
    size = float((verts.max(0) - lo).max())
    xy = np.round((verts[:, :2] - lo[:2]) / size * (grid - 1)).astype(np.int32)
    raster = np.zeros((grid, grid), np.uint8)
    cv2.fillPoly(raster, [xy[f] for f in faces], 1)
    return float(raster.sum()) / grid**2


@functools.lru_cache(maxsize=None)
def _object_spec(object_name: str) -> dict:
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


def object_spec(object_name: str) -> dict:
    """Mesh path, mesh scale, centre offset and colour of one object (parsed once per process)."""
    return dict(_object_spec(object_name))


@functools.lru_cache(maxsize=None)
def mesh_vertices(object_name: str) -> np.ndarray:
    """The object's mesh vertices (N, 3) in its body frame, as ``load_object`` places them."""
    s = object_spec(object_name)
    verts, _ = _read_obj(Path(s["mesh"]))
    return verts * s["scale"] - np.asarray(s["centre"])


def load_object(client: int, object_name: str, pos, orn) -> int:
    """Create the object as a rigid body (convex-hull collision) centred at ``pos``.
    Its shapes live until the world is reset (the env builds a fresh world per episode)."""
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


def eligible(verts: np.ndarray, faces: list) -> bool:
    """The pool rule (module docstring): cheap to draw, not flat or needle-like, not a sliver."""
    if len(verts) == 0 or not np.isfinite(verts).all():
        return False
    e = np.sort(verts.max(0) - verts.min(0))
    return (len(faces) <= MAX_TRIANGLES and e[0] / e[2] > MIN_ASPECT
            and top_cover(verts, faces) >= MIN_TOP_COVER)


def derive_pools() -> list[int]:
    """Re-derive the eligible indices from pybullet_data (slow: reads 1000 meshes)."""
    return [i for i in range(1000) if eligible(*_read_obj(_data_dir() / f"{i:03d}" / f"{i:03d}.obj"))]


if __name__ == "__main__":
    derived = derive_pools()
    assert derived == _ELIGIBLE, "pybullet_data's random_urdfs changed; update _ELIGIBLE"
    print({k: len(v) for k, v in POOLS.items()}, "pools match pybullet_data")
