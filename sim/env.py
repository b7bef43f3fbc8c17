"""ParrotEnv: the PyBullet twin as a gymnasium-style environment.

    env = ParrotEnv(EnvConfig(task="grasp", objects="train", image_size=48, max_steps=25))
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)

Scene: a table (top at z = 0), the xArm6 at the origin, a tray (always) and, for
``place_on_target`` or with probability 1/2 otherwise, a flat target pad; three objects from
the chosen pool. Everything random in a scene comes from ``numpy.random.default_rng(seed)``;
the first reset builds table and arm and saves that PyBullet state, later resets remove the
episode's bodies and restore it (10 ms instead of 23 ms), so the same seed gives the same
scene, the bitwise-same first observation and, for the same actions, the bitwise-same
trajectory, whatever ran before (tests/test_sim_env.py pins this).

Action (parrot_core.action_space): validated (NaN/inf -> InvalidActionError, nothing applied),
clipped, scaled by ``to_metric``. The position delta moves the TCP target (kept inside
WORKSPACE_LOW/HIGH and within LEASH_M of the measured TCP, so pushing against the table does
not wind up); the rotation delta turns it about the world x/y/z axes (roll/pitch kept within
MAX_TILT_RAD of pointing straight down, yaw within MAX_YAW_RAD); the gripper closes or opens
on a command past the threshold. Each step runs SUBSTEPS (8) physics steps of 1/240 s, plus
GRIPPER_SUBSTEPS (20) when the gripper changes state.

Rendering: PyBullet's TinyRenderer, no shadows, from a fixed camera (CAMERA_*). The table is
not drawn each frame (filling the frame costs ~0.5 ms); pixels that hit nothing take a cached
image of the table, which gives the same image as drawing it.

Reward: 1.0 on a step whose end state satisfies the task (sim/tasks.py), else 0.0.
``terminated`` is True on success when ``terminate_on_success`` (default; RL), otherwise
the episode always runs ``max_steps`` (collection, like the paper's 25-step trajectories,
judges success at the last step). ``truncated`` is True at ``max_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from parrot_core.action_space import to_metric, validate_action
from sim import objects as objpool
from sim.robot import DOWN_EULER, HOME_POS, XArm, home_joint_positions
from sim.tasks import TARGET_HALF_M, TRAY_INNER_HALF_M, TRAY_WALL_M, is_success, task_spec

TIMESTEP = 1.0 / 240.0
SOLVER_ITERATIONS = 30
# The solver stops early once converged: half the cost of a substep, same grasps.
SOLVER_RESIDUAL = 1e-4
CONE_FRICTION = 0  # pyramid friction approximation: cheaper
SUBSTEPS = 8
GRIPPER_SUBSTEPS = 20
SETTLE_SUBSTEPS = 24
REUSE_WORLD = True  # reset() restores a saved table+arm state instead of rebuilding it
WORKSPACE_LOW = np.array([0.22, -0.26, 0.015])
WORKSPACE_HIGH = np.array([0.60, 0.26, 0.35])
LEASH_M = 0.05
MAX_TILT_RAD = 0.6
MAX_YAW_RAD = np.pi / 2
# Where things are spawned (table top is z = 0)
OBJECT_REGION = (np.array([0.30, -0.17]), np.array([0.50, 0.17]))
CONTAINER_REGION = (np.array([0.32, -0.15]), np.array([0.48, 0.15]))
MIN_OBJECT_GAP_M = 0.075
MIN_CONTAINER_GAP_M = 0.115  # object centre to tray centre
TABLE_HALF = (0.75, 0.75, 0.02)
TABLE_CENTRE = (0.15, 0.0, -0.02)
TABLE_RGBA = (0.78, 0.70, 0.58, 1.0)

# Camera: fixed, in front of the robot and a little to its left, looking back at the
# workspace 45 deg down (the arm at the top of the image, the table filling the rest).
CAMERA_TARGET = (0.40, 0.0, 0.04)
CAMERA_DISTANCE = 0.62
CAMERA_YAW = 75.0
CAMERA_PITCH = -45.0
CAMERA_FOV = 50.0

TRAY_COLOURS = [(0.35, 0.55, 0.85, 1.0), (0.85, 0.55, 0.25, 1.0), (0.40, 0.75, 0.45, 1.0),
                (0.65, 0.45, 0.75, 1.0)]
TARGET_COLOURS = [(0.9, 0.2, 0.2, 1.0), (0.95, 0.85, 0.2, 1.0), (0.2, 0.2, 0.9, 1.0)]


class EnvError(RuntimeError):
    """Misuse of the environment (step before reset, bad configuration)."""


@dataclass
class EnvConfig:
    task: str = "grasp"  # grasp | lift | pick_place | place_on_target
    objects: str = "train"  # train | heldout
    image_size: int = 48  # square images (H = W); or pass a (H, W) tuple
    max_steps: int = 25
    num_objects: int = 3
    terminate_on_success: bool = True
    substeps: int = SUBSTEPS
    # Named-object tasks: always put this object in the scene and make it the target, like
    # the paper's "Pick up Cup" (None: a random one of the scene's objects each episode).
    target_object: str | None = None


def add_scene_arguments(parser) -> None:
    """The scene flags shared by the commands that build a task's env (train-rl, prior-viz)."""
    parser.add_argument("--target-object", help="named-object tasks: always this object (e.g. rand_805)")
    parser.add_argument("--num-objects", type=int, default=EnvConfig.num_objects,
                        help="objects per scene (the paper's test tasks have one or two)")


class ParrotEnv:
    """See module docstring. Not thread-safe; one PyBullet DIRECT client per env."""

    def __init__(self, config: EnvConfig | None = None, **kwargs):
        self.config = config or EnvConfig(**kwargs)
        self.spec = task_spec(self.config.task)
        self.pool = objpool.pool(self.config.objects)
        fixed = self.config.target_object
        if fixed is not None and (not self.spec.named_object or fixed not in self.pool):
            raise EnvError(f"target_object {fixed!r}: needs a named-object task (lift, "
                           f"pick_place, place_on_target) and an object of the "
                           f"{self.config.objects!r} pool, e.g. {self.pool[0]!r}")
        size = self.config.image_size
        self.image_hw = (size, size) if np.isscalar(size) else tuple(int(s) for s in size)
        self.client = p.connect(p.DIRECT)
        self._view = p.computeViewMatrixFromYawPitchRoll(
            CAMERA_TARGET, CAMERA_DISTANCE, CAMERA_YAW, CAMERA_PITCH, 0.0, 2)
        h, w = self.image_hw
        self._proj = p.computeProjectionMatrixFOV(CAMERA_FOV, w / h, 0.05, 3.0)
        self._home_q = None
        self._backgrounds = {}
        self._needs_reset = True
        self.robot = None

    # ---- lifecycle ----
    def close(self) -> None:
        client = getattr(self, "client", None)  # None when __init__ refused the config
        if client is not None and client >= 0:
            try:
                p.disconnect(self.client)
            except p.error:
                pass
            self.client = -1

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- reset ----
    def _build_world(self) -> None:
        c = dict(physicsClientId=self.client)
        p.resetSimulation(**c)
        p.setPhysicsEngineParameter(fixedTimeStep=TIMESTEP, numSolverIterations=SOLVER_ITERATIONS,
                                    solverResidualThreshold=SOLVER_RESIDUAL,
                                    enableConeFriction=CONE_FRICTION,
                                    deterministicOverlappingPairs=1, **c)
        p.setGravity(0, 0, -9.81, **c)
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=TABLE_HALF, **c)
        # The table is drawn only into the cached background (see render_obs): filling
        # the whole frame costs TinyRenderer ~0.5 ms per 48x48 image.
        self.table = p.createMultiBody(0, col, -1, TABLE_CENTRE, **c)
        p.changeVisualShape(self.table, -1, rgbaColor=(0, 0, 0, 0), **c)  # not drawn
        self.robot = XArm(self.client)
        if self._home_q is None:
            self._home_q = home_joint_positions(self.client, self.robot)
        self.robot.reset(self._home_q)
        self._world_state = p.saveState(**c)
        self._scene_bodies = []

    def _restore_world(self) -> None:
        """Back to the state right after _build_world: scene bodies removed, arm at home."""
        c = dict(physicsClientId=self.client)
        for body in self._scene_bodies:
            p.removeBody(body, **c)
        self._scene_bodies = []
        p.restoreState(self._world_state, **c)
        self.robot.reset(self._home_q)

    def _make_tray(self, pos, rgba) -> int:
        c = dict(physicsClientId=self.client)
        h, t, w = TRAY_INNER_HALF_M, 0.008, TRAY_WALL_M
        boxes = [((h + t, h + t, 0.004), (0, 0, 0.004))]
        for sx, sy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            half = (t / 2, h + t, w / 2) if sx else (h + t, t / 2, w / 2)
            boxes.append((half, (sx * (h + t / 2), sy * (h + t / 2), w / 2)))
        col = p.createCollisionShapeArray([p.GEOM_BOX] * 5, halfExtents=[b[0] for b in boxes],
                                          collisionFramePositions=[b[1] for b in boxes], **c)
        vis = p.createVisualShapeArray([p.GEOM_BOX] * 5, halfExtents=[b[0] for b in boxes],
                                       visualFramePositions=[b[1] for b in boxes],
                                       rgbaColors=[rgba] * 5, **c)
        body = p.createMultiBody(0, col, vis, pos, **c)
        self._scene_bodies.append(body)
        return body

    def _make_target(self, pos, rgba) -> int:
        c = dict(physicsClientId=self.client)
        half = (TARGET_HALF_M, TARGET_HALF_M, 0.002)
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, **c)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba, **c)
        body = p.createMultiBody(0, col, vis, (pos[0], pos[1], 0.002), **c)
        self._scene_bodies.append(body)
        return body

    def _sample_layout(self, rng):
        lo, hi = CONTAINER_REGION
        has_target = self.spec.place == "target" or rng.random() < 0.5
        for _ in range(1000):
            tray = rng.uniform(lo, hi)
            target = rng.uniform(lo, hi) if has_target else None
            if target is None or np.linalg.norm(tray - target) >= 0.16:
                break
        centres = [tray] + ([target] if target is not None else [])
        obj_xy = []
        lo, hi = OBJECT_REGION
        for _ in range(10000):
            if len(obj_xy) == self.config.num_objects:
                break
            xy = rng.uniform(lo, hi)
            if all(np.linalg.norm(xy - q) >= MIN_CONTAINER_GAP_M for q in centres) and \
                    all(np.linalg.norm(xy - q) >= MIN_OBJECT_GAP_M for q in obj_xy):
                obj_xy.append(xy)
        else:  # pragma: no cover - region is large enough
            raise EnvError("could not place objects")
        return tray, target, obj_xy

    def _sample_objects(self, rng) -> list[str]:
        n = self.config.num_objects
        fixed = self.config.target_object
        if fixed is None:
            return [str(x) for x in rng.choice(self.pool, size=n, replace=False)]
        others = [str(x) for x in rng.choice([o for o in self.pool if o != fixed], size=n - 1,
                                             replace=False)]
        others.insert(int(rng.integers(n)), fixed)
        return others

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Build a fresh scene from ``seed``; returns (obs, info)."""
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31))
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        if self.robot is None or not REUSE_WORLD:
            self._build_world()
        else:
            self._restore_world()
        c = dict(physicsClientId=self.client)
        tray_xy, target_xy, obj_xy = self._sample_layout(rng)
        self.tray_pos = np.array([tray_xy[0], tray_xy[1], 0.0])
        self.tray = self._make_tray(self.tray_pos, TRAY_COLOURS[rng.integers(len(TRAY_COLOURS))])
        self.target_pad_pos = None
        if target_xy is not None:
            self.target_pad_pos = np.array([target_xy[0], target_xy[1], 0.0])
            self._make_target(self.target_pad_pos, TARGET_COLOURS[rng.integers(len(TARGET_COLOURS))])
        names = self._sample_objects(rng)
        self.bodies = {}
        for name, xy in zip(names, obj_xy):
            half = objpool.object_spec(name)["half_extents"]
            orn = p.getQuaternionFromEuler((0, 0, rng.uniform(-np.pi, np.pi)))
            self.bodies[name] = objpool.load_object(self.client, name, (xy[0], xy[1], half[2] + 0.003), orn)
            self._scene_bodies.append(self.bodies[name])
        self.object_names = names
        if not self.spec.named_object:
            self.target_object = None
        elif self.config.target_object is not None:
            self.target_object = self.config.target_object
        else:
            self.target_object = names[int(rng.integers(len(names)))]
        for _ in range(SETTLE_SUBSTEPS):
            p.stepSimulation(**c)
        self.spawn_z = {n: float(self._object_pos(n)[2]) for n in names}
        self.target_ee = np.array(HOME_POS, dtype=np.float64)
        self.target_rpy = np.zeros(3)  # roll/pitch/yaw offsets from pointing down
        self.robot.set_gripper(closed=False)
        self.t = 0
        self._needs_reset = False
        obs = self.render_obs()
        return obs, self._info(False)

    # ---- step ----
    def _target_orn(self):
        r, pch, y = self.target_rpy
        q = p.getQuaternionFromEuler(DOWN_EULER)
        q = p.multiplyTransforms((0, 0, 0), p.getQuaternionFromEuler((r, pch, y)), (0, 0, 0), q)[1]
        return q

    def step(self, action):
        if self._needs_reset:
            raise EnvError("call reset() before step() (episode over or never started)")
        a = validate_action(action)  # raises InvalidActionError before anything is applied
        dpos, drot, grip = to_metric(a)
        c = dict(physicsClientId=self.client)
        ee, _ = self.robot.ee_pose()
        target = np.clip(self.target_ee + dpos, WORKSPACE_LOW, WORKSPACE_HIGH)
        target = ee + np.clip(target - ee, -LEASH_M, LEASH_M)
        self.target_ee = target
        self.target_rpy = np.clip(self.target_rpy + drot, [-MAX_TILT_RAD, -MAX_TILT_RAD, -MAX_YAW_RAD],
                                  [MAX_TILT_RAD, MAX_TILT_RAD, MAX_YAW_RAD])
        self.robot.set_ee_target(target, self._target_orn())
        n = self.config.substeps
        if grip == -1 and not self.robot.gripper_closed:
            self.robot.set_gripper(closed=True)
            n += GRIPPER_SUBSTEPS
        elif grip == 1 and self.robot.gripper_closed:
            self.robot.set_gripper(closed=False)
            n += GRIPPER_SUBSTEPS
        for _ in range(n):
            p.stepSimulation(**c)
        self.t += 1
        state = self._state()
        success = self._success(state)
        reward = 1.0 if success else 0.0
        terminated = bool(success and self.config.terminate_on_success)
        truncated = bool(self.t >= self.config.max_steps and not terminated)
        if terminated or truncated:
            self._needs_reset = True
        return self.render_obs(), reward, terminated, truncated, self._info(success, state)

    # ---- observation / state ----
    def _camera(self, client, h, w, proj):
        _, _, rgba, depth, _ = p.getCameraImage(
            w, h, self._view, proj, renderer=p.ER_TINY_RENDERER, shadow=0,
            flags=p.ER_NO_SEGMENTATION_MASK, physicsClientId=client)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[:, :, :3]
        return rgb, np.asarray(depth, dtype=np.float32).reshape(h, w)

    def _background(self, h, w, proj) -> np.ndarray:
        """The table alone, rendered once per image size in a scratch client."""
        key = (h, w)
        if key not in self._backgrounds:
            scratch = p.connect(p.DIRECT)
            try:
                vis = p.createVisualShape(p.GEOM_BOX, halfExtents=TABLE_HALF, rgbaColor=TABLE_RGBA,
                                          physicsClientId=scratch)
                p.createMultiBody(0, -1, vis, TABLE_CENTRE, physicsClientId=scratch)
                self._backgrounds[key] = self._camera(scratch, h, w, proj)[0].copy()
            finally:
                p.disconnect(scratch)
        return self._backgrounds[key]

    def render_obs(self, size=None) -> np.ndarray:
        """The fixed-camera RGB image, uint8 (H, W, 3).

        Everything but the table is rendered; pixels that hit nothing take the cached
        picture of the table, so the image equals one rendered with the table.
        """
        h, w = self.image_hw if size is None else size
        proj = self._proj if size is None else p.computeProjectionMatrixFOV(CAMERA_FOV, w / h, 0.05, 3.0)
        rgb, depth = self._camera(self.client, h, w, proj)
        empty = depth >= 0.99999
        return np.where(empty[:, :, None], self._background(h, w, proj), rgb)

    def _object_pos(self, name) -> np.ndarray:
        return np.array(p.getBasePositionAndOrientation(self.bodies[name], physicsClientId=self.client)[0])

    def _state(self) -> dict:
        ee, orn = self.robot.ee_pose()
        return {"ee": ee, "orn": orn, "positions": {n: self._object_pos(n) for n in self.object_names}}

    def _success(self, state) -> bool:
        return is_success(self.config.task, positions=state["positions"], spawn_z=self.spawn_z,
                          ee_pos=state["ee"], gripper_closed=self.robot.gripper_closed,
                          target_object=self.target_object, tray_pos=self.tray_pos,
                          target_pos=self.target_pad_pos)

    def target_position(self):
        if self.spec.place == "tray":
            return self.tray_pos.copy()
        if self.spec.place == "target":
            return self.target_pad_pos.copy()
        return None

    def _info(self, success: bool, state: dict | None = None) -> dict:
        state = state or self._state()
        tp = self.target_position()
        return {
            "success": bool(success),
            "ee_pos": state["ee"],
            "ee_orn": np.array(state["orn"]),
            "gripper_closed": bool(self.robot.gripper_closed),
            "gripper_angle": float(self.robot.gripper_angle()),
            "object_names": list(self.object_names),
            "object_positions": state["positions"],
            "object_spawn_z": dict(self.spawn_z),
            "target_object": self.target_object,
            "target_position": tp,
            "tray_position": self.tray_pos.copy(),
            "target_pad_position": None if self.target_pad_pos is None else self.target_pad_pos.copy(),
            "task": self.config.task,
            "object_pool": self.config.objects,
            "seed": self.seed,
            "t": self.t,
        }
