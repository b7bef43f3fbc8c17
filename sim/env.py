"""ParrotEnv: the PyBullet twin as a `gymnasium.Env`.

    env = ParrotEnv(EnvConfig(task="grasp", objects="train", image_size=48, max_steps=25))
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)

    import gymnasium, sim.env                  # registers parrot/Grasp-v0, ...
    env = gymnasium.make("parrot/Grasp-v0", objects="heldout")

Spaces: observation Box(0, 255, (H, W, 3), uint8), the camera image; action Box(-1, 1, (7,),
float32), the 7D action of parrot_core.action_space. `render()` (render_mode "rgb_array")
returns the observation.

Scene: a table (top at z = 0), the xArm6 at the origin, a tray (always) and, for
``place_on_target`` or with probability 1/2 otherwise, a flat target pad; three objects from
the chosen pool. Everything random in a scene comes from ``numpy.random.default_rng(seed)``;
the first reset builds table and arm and saves that PyBullet state, later resets remove the
episode's bodies and restore it (10 ms instead of 23 ms), so the same seed gives the same
scene, the bitwise-same first observation and, for the same actions, the bitwise-same
trajectory, whatever ran before (tests/test_sim_env.py pins this).

Action (parrot_core.action_space): validated (NaN/inf -> InvalidActionError, nothing applied),
then checked by the arm's safety filter (``EnvConfig.safety``, parrot_core.safety: a refused
command moves nothing and holds the gripper; ``info["safety_stop"]`` names the rule), scaled
by ``to_metric``. The position delta moves the TCP target (kept inside
WORKSPACE_LOW/HIGH and within LEASH_M of the measured TCP, so pushing against the table does
not wind up); the rotation delta turns it about the world x/y/z axes (roll/pitch kept within
MAX_TILT_RAD of pointing straight down, yaw within MAX_YAW_RAD); the gripper closes or opens
on a command past the threshold. Each step runs SUBSTEPS (8) physics steps of 1/240 s, plus
GRIPPER_SUBSTEPS (20) when the gripper changes state.

Rendering: PyBullet's TinyRenderer, no shadows, from a fixed camera (EnvConfig.camera_file). The table is
not drawn each frame (filling the frame costs ~0.5 ms); pixels that hit nothing take a cached
image of the table, which gives the same image as drawing it.

Reward: 1.0 on a step whose end state satisfies the task (sim/tasks.py), else 0.0.
``terminated`` is True on success when ``terminate_on_success`` (default; RL), otherwise
the episode always runs ``max_steps`` (collection, like the paper's 25-step trajectories,
judges success at the last step). ``truncated`` is True at ``max_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium
import numpy as np
import pybullet as p

from parrot_core.action_space import ACTION_DIM, to_metric, validate_action
from parrot_core.camera import twin_camera
from parrot_core.safety import SafetyConfig, SafetyFilter
from sim import objects as objpool
from sim.domain_randomization import (EpisodeLook, RandomizationConfig, degrade, draw_look,
                                      look_rng, scaled_rgba)
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
WORKSPACE_LOW = np.array(SafetyConfig.workspace_min)  # the arm's default box is the twin's
WORKSPACE_HIGH = np.array(SafetyConfig.workspace_max)
LEASH_M = 0.05
MAX_TILT_RAD = SafetyConfig.max_tilt_rad
MAX_YAW_RAD = SafetyConfig.max_yaw_rad
# Where things are spawned (table top is z = 0). Compact (object centres in 22 x 16 cm, the
# tray's in 16 x 12 cm), so that the camera can frame it tightly and objects look large in
# 48x48 (roboverse: objects in a 2 x 20 cm strip beside the tray, about 140 px/m). The flat
# target pad may lie anywhere objects may.
OBJECT_REGION = (np.array([0.28, -0.08]), np.array([0.50, 0.08]))
CONTAINER_REGION = (np.array([0.30, -0.06]), np.array([0.46, 0.06]))
PAD_REGION = OBJECT_REGION
MIN_OBJECT_GAP_M = 0.085  # centre to centre: OBJECT_SIZE_M plus a 1.5 cm gap
MIN_CONTAINER_GAP_M = 0.12  # object centre to tray centre: clear of the tray's wall
MIN_PAD_GAP_M = 0.095  # object centre to pad centre: objects do not start on the pad
TRAY_PAD_CLEARANCE_M = 0.125  # x or y distance of tray and pad centres: 1 cm between them
MAX_LAYOUT_DRAWS = 500
TABLE_HALF = (0.75, 0.75, 0.02)
TABLE_CENTRE = (0.15, 0.0, -0.02)
TABLE_RGBA = (0.78, 0.70, 0.58, 1.0)

# Camera: fixed, in front of the robot, looking back at the spawn region 45 deg down (the
# gripper's fingertips at the top edge at the start pose, the tray and objects filling the
# rest). A narrow field of view from 0.62 m rather than roboverse's 60 deg from ~0.3 m: a
# camera that close would sit where the arm reaches. 45 deg down keeps the gripper's image at
# the start pose above every object (steeper, it starts to hide the far ones). The numbers
# are parrot_core.camera.DEFAULT_CAMERA (the arm's camera file has the same form); figures:
# `parrot render-scene --stats`.
CAMERA_NEAR_M, CAMERA_FAR_M = 0.05, 3.0

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
    # The arm's safety filter (parrot_core.safety) with the bridge's parameters: a command it
    # refuses moves nothing, as on the arm, and info["safety_stop"] names the rule. None: off.
    safety: SafetyConfig | None = field(default_factory=SafetyConfig)
    # The deployed control rate (the bridge's control_rate_hz): what the filter's speed limits
    # turn a per-step delta into m/s at.
    control_rate_hz: float = 10.0
    # The camera file (parrot_core.camera) of the arm's camera: the twin renders the view the
    # models get from it there. None: DEFAULT_CAMERA.
    camera_file: str | None = None
    # Domain randomization (sim/domain_randomization.py): colours, light, camera jitter, blur
    # and noise change per episode; layout and physics stay those of the seed.
    randomize: bool = False
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)


def add_scene_arguments(parser) -> None:
    """The scene flags shared by the commands that build a task's env (train-rl, prior-viz)."""
    parser.add_argument("--target-object", help="named-object tasks: always this object (e.g. rand_805)")
    parser.add_argument("--num-objects", type=int, default=EnvConfig.num_objects,
                        help="objects per scene (the paper's test tasks have one or two)")
    parser.add_argument("--randomize", action="store_true",
                        help="domain randomization: colours, light, camera jitter, blur, noise")
    parser.add_argument("--randomize-scale", type=float, default=1.0, metavar="K",
                        help="with --randomize: every range K times the collection's (K > 1: "
                             "looks a prior never saw)")
    parser.add_argument("--camera-file", default=EnvConfig.camera_file, metavar="YAML",
                        help="the arm camera's file (parrot_core/camera.py): render its view "
                             "(default: the twin's camera, config/camera.yaml)")


def scene_config(args) -> dict:
    """The EnvConfig fields that add_scene_arguments' flags set (one place maps them)."""
    if args.randomize_scale != 1.0 and not args.randomize:
        raise ValueError(f"--randomize-scale {args.randomize_scale:g} needs --randomize")
    return {"num_objects": args.num_objects, "target_object": args.target_object,
            "camera_file": args.camera_file, "randomize": args.randomize,
            "randomization": RandomizationConfig().scaled(args.randomize_scale)}


class ParrotEnv(gymnasium.Env):
    """See module docstring. Not thread-safe; one PyBullet DIRECT client per env."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: EnvConfig | None = None, render_mode: str | None = None, **kwargs):
        self.config = config or EnvConfig(**kwargs)
        if render_mode not in (None, "rgb_array"):
            raise EnvError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.task_spec = task_spec(self.config.task)
        self.pool = objpool.pool(self.config.objects)
        fixed = self.config.target_object
        if fixed is not None and (not self.task_spec.named_object or fixed not in self.pool):
            raise EnvError(f"target_object {fixed!r}: needs a named-object task (lift, "
                           f"pick_place, place_on_target) and an object of the "
                           f"{self.config.objects!r} pool, e.g. {self.pool[0]!r}")
        size = self.config.image_size
        self.image_hw = (size, size) if np.isscalar(size) else tuple(int(s) for s in size)
        self.observation_space = gymnasium.spaces.Box(0, 255, (*self.image_hw, 3), np.uint8)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.client = p.connect(p.DIRECT)
        self.camera = twin_camera(self.config.camera_file)
        self._view = p.computeViewMatrix(*(v.tolist() for v in self.camera.look_at()))
        self._look = EpisodeLook(fov_deg=self.camera.model_fov_deg)  # the plain look
        h, w = self.image_hw
        self._proj = self._projection(h, w)
        self._home_q = None
        self._backgrounds = {}
        self._table_client = None  # a second client with the table alone (see _background)
        self._needs_reset = True
        self.robot = None
        cfg = self.config
        self.safety = None if cfg.safety is None else SafetyFilter(cfg.safety, cfg.control_rate_hz)
        self.safety_stop: str | None = None  # the rule that refused the last step's command

    # ---- lifecycle ----
    def close(self) -> None:
        for attr in ("client", "_table_client"):
            client = getattr(self, attr, None)  # None when __init__ refused the config
            if client is not None and client >= 0:
                try:
                    p.disconnect(client)
                except p.error:
                    pass
                setattr(self, attr, -1)

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
        self._scene_bodies = []  # tray, pad and objects: what a randomized look recolours

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

    def _sample_containers(self, rng, has_pad: bool):
        tray = rng.uniform(*CONTAINER_REGION)
        if not has_pad:
            return tray, None
        # pad candidates drawn in one batch: a Python loop of draws costs ~1 ms per reset
        pads = rng.uniform(*PAD_REGION, size=(200, 2))
        ok = np.flatnonzero(np.abs(pads - tray).max(axis=1) >= TRAY_PAD_CLEARANCE_M)
        return tray, (pads[ok[0]] if len(ok) else None)

    def _sample_object_xy(self, rng, tray, pad):
        """Object positions clear of the tray, the pad and each other, or None if stuck."""
        cand = rng.uniform(*OBJECT_REGION, size=(200 * self.config.num_objects, 2))
        clear = np.linalg.norm(cand - tray, axis=1) >= MIN_CONTAINER_GAP_M
        if pad is not None:
            clear &= np.linalg.norm(cand - pad, axis=1) >= MIN_PAD_GAP_M
        obj_xy = []
        for xy in cand[clear]:
            if all(np.hypot(*(xy - q)) >= MIN_OBJECT_GAP_M for q in obj_xy):
                obj_xy.append(xy)
                if len(obj_xy) == self.config.num_objects:
                    return obj_xy
        return None

    def _sample_layout(self, rng):
        # The spawn region is small (objects must look large in 48x48), so a draw of tray and
        # pad often leaves no room for the objects (about 6 draws per scene with the pad,
        # 2 without): draw again.
        has_pad = self.task_spec.place == "target" or rng.random() < 0.5  # decided once: no bias
        for _ in range(MAX_LAYOUT_DRAWS):
            tray, pad = self._sample_containers(rng, has_pad)
            if has_pad and pad is None:
                continue
            obj_xy = self._sample_object_xy(rng, tray, pad)
            if obj_xy is not None:
                return tray, pad, obj_xy
        raise EnvError(f"could not place {self.config.num_objects} objects beside the tray"
                       f"{' and pad' if has_pad else ''}; OBJECT_REGION too small")

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
        super().reset(seed=seed)  # gymnasium's np_random: seeded here, or kept from before
        if seed is None:  # the next scene of the stream a seeded reset started (gymnasium)
            seed = int(self.np_random.integers(0, 2**31))
        self.seed = int(seed)
        self.safety_stop = None
        rng = np.random.default_rng(self.seed)
        # A fresh world every episode: a restored one (saveState/restoreState) keeps the
        # contact caches of the episode before, which change the solver's order, so a seed's
        # episode would depend on what ran before it (and on the number of collection workers).
        self._build_world()
        c = dict(physicsClientId=self.client)
        tray_xy, target_xy, obj_xy = self._sample_layout(rng)
        self.tray_pos = np.array([tray_xy[0], tray_xy[1], 0.0])
        self.tray = self._make_tray(self.tray_pos, TRAY_COLOURS[rng.integers(len(TRAY_COLOURS))])
        self.target_pad_pos = self.target_pad = None
        if target_xy is not None:
            self.target_pad_pos = np.array([target_xy[0], target_xy[1], 0.0])
            self.target_pad = self._make_target(self.target_pad_pos, TARGET_COLOURS[rng.integers(len(TARGET_COLOURS))])
        names = self._sample_objects(rng)
        self.bodies = {}
        for name, xy in zip(names, obj_xy):
            half = objpool.object_spec(name)["half_extents"]
            orn = p.getQuaternionFromEuler((0, 0, rng.uniform(-np.pi, np.pi)))
            self.bodies[name] = objpool.load_object(self.client, name, (xy[0], xy[1], half[2] + 0.003),
                                                    orn)
            self._scene_bodies.append(self.bodies[name])
        self.object_names = names
        if not self.task_spec.named_object:
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
        if self.config.randomize:
            self._randomize_look()
        obs = self.render_obs()
        return obs, self._info(False)

    def _randomize_look(self) -> None:
        """This episode's colours, light and camera (sim/domain_randomization.py)."""
        c = dict(physicsClientId=self.client)
        rng = look_rng(self.seed)
        self._look = draw_look(rng, self.config.randomization, self.camera, self._scene_bodies)
        self._noise_rng = rng
        if not hasattr(self, "_arm_rgba"):  # the arm's own colours, before any scaling
            self._arm_rgba = {d[1]: d[7] for d in p.getVisualShapeData(self.robot.id, **c)}
        for link, rgba in self._arm_rgba.items():
            p.changeVisualShape(self.robot.id, link,
                                rgbaColor=scaled_rgba(rgba, self._look.colour_scales["arm"]), **c)
        for body in self._scene_bodies:
            for d in p.getVisualShapeData(body, **c):
                p.changeVisualShape(body, d[1], rgbaColor=scaled_rgba(
                    d[7], self._look.colour_scales[body]), **c)
        self._view = p.computeViewMatrix(self._look.eye.tolist(), self._look.ahead.tolist(),
                                         self._look.up.tolist())
        self._proj = self._projection(*self.image_hw)
        self._backgrounds.clear()  # the table's picture changes with the look

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
        ee, orn = self.robot.ee_pose()
        self.safety_stop = self._refusal(action, ee, orn)
        if self.safety_stop is not None:  # as on the arm: no motion, the gripper holds
            dpos, drot, grip = np.zeros(3), np.zeros(3), 0
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
            flags=p.ER_NO_SEGMENTATION_MASK, physicsClientId=client, **self._look.light)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[:, :, :3]
        return rgb, np.asarray(depth, dtype=np.float32).reshape(h, w)

    def _background(self, h, w, proj) -> np.ndarray:
        """The table alone, rendered once per image size and projection (and per episode with
        a randomized look, which clears the cache) in a second client."""
        key = (h, w, tuple(proj))  # a full camera frame and an observation may share a size
        if key not in self._backgrounds:
            table = self._look.colour_scales.get("table", (1.0, 1.0, 1.0))
            if self._table_client is None:  # kept: a randomized look renders one per episode
                self._table_client = p.connect(p.DIRECT)
                vis = p.createVisualShape(p.GEOM_BOX, halfExtents=TABLE_HALF, rgbaColor=TABLE_RGBA,
                                          physicsClientId=self._table_client)
                self._table_body = p.createMultiBody(0, -1, vis, TABLE_CENTRE,
                                                     physicsClientId=self._table_client)
            p.changeVisualShape(self._table_body, -1, rgbaColor=scaled_rgba(TABLE_RGBA, table),
                                physicsClientId=self._table_client)
            self._backgrounds[key] = self._camera(self._table_client, h, w, proj)[0].copy()
        return self._backgrounds[key]

    def _view_size(self, size=None):
        """(h, w, projection) of the fixed camera at the observation size or another one."""
        if size is None:
            return (*self.image_hw, self._proj)
        h, w = size
        return h, w, self._projection(h, w)

    def _projection(self, h, w):
        """The models' square field of view (vertical), stretched to w / h for other shapes."""
        return p.computeProjectionMatrixFOV(self._look.fov_deg, w / h, CAMERA_NEAR_M,
                                            CAMERA_FAR_M)

    def render(self):
        """render_mode "rgb_array": the current camera image (what the policy sees)."""
        return None if self.render_mode is None else self.render_obs()

    def render_obs(self, size=None) -> np.ndarray:
        """The fixed-camera RGB image, uint8 (H, W, 3).

        Everything but the table is rendered; pixels that hit nothing take the cached
        picture of the table, so the image equals one rendered with the table.
        """
        image = self._render(*self._view_size(size))
        if self.config.randomize:
            image = degrade(image, self._look, self._noise_rng)
        return image

    def render_camera_frame(self) -> np.ndarray:
        """What the arm's camera itself would capture: its full frame (width x height of the
        camera file, its intrinsics), uint8 (H, W, 3). parrot_core.camera.model_view turns it
        into the observation's framing, as the policy node does with a real frame."""
        cam = self.camera
        proj = p.computeProjectionMatrix(*cam.frustum(CAMERA_NEAR_M), CAMERA_NEAR_M, CAMERA_FAR_M)
        return self._render(cam.height, cam.width, proj)

    def _render(self, h, w, proj) -> np.ndarray:
        """Everything but the table, with the cached table where nothing was drawn."""
        rgb, depth = self._camera(self.client, h, w, proj)
        empty = depth >= 0.99999
        return np.where(empty[:, :, None], self._background(h, w, proj), rgb)

    def segmentation(self, size=None) -> np.ndarray:
        """Body unique id per pixel of the fixed camera (-1: nothing drawn), int32 (H, W).

        Same view as ``render_obs``; the table is not drawn, so it reads -1 (sim/scene_stats.py
        uses this to measure how large objects appear and whether the arm hides them).
        """
        h, w, proj = self._view_size(size)
        _, _, _, _, seg = p.getCameraImage(w, h, self._view, proj, renderer=p.ER_TINY_RENDERER,
                                           shadow=0, physicsClientId=self.client)
        return np.asarray(seg, dtype=np.int32).reshape(h, w)

    def project(self, points) -> np.ndarray:
        """Pixel coordinates (u right, v down; float) of world points (N, 3) in the observation."""
        h, w = self.image_hw
        view = np.asarray(self._view).reshape(4, 4).T
        proj = np.asarray(self._proj).reshape(4, 4).T
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        pts = np.c_[pts, np.ones(len(pts))]
        clip = (proj @ view @ pts.T).T
        ndc = clip[:, :2] / clip[:, 3:4]
        return np.c_[(ndc[:, 0] + 1) / 2 * w, (1 - ndc[:, 1]) / 2 * h]

    def _object_pos(self, name) -> np.ndarray:
        return np.array(p.getBasePositionAndOrientation(self.bodies[name], physicsClientId=self.client)[0])

    def _state(self) -> dict:
        ee, orn = self.robot.ee_pose()
        return {"ee": ee, "orn": orn, "positions": {n: self._object_pos(n) for n in self.object_names}}

    def _refusal(self, action, ee, orn) -> str | None:
        """The rule of the arm's safety filter that refuses this command, or None. Only the
        motion rules apply here: the twin has no clock, camera or watchdog to judge."""
        if self.safety is None:
            return None
        d = self.safety.check_command(action, now=self.t / self.config.control_rate_hz,
                                      ee_pos=ee, ee_orn=orn)
        return d.stop_reason

    def _success(self, state) -> bool:
        return is_success(self.config.task, positions=state["positions"], spawn_z=self.spawn_z,
                          ee_pos=state["ee"], gripper_closed=self.robot.gripper_closed,
                          target_object=self.target_object, tray_pos=self.tray_pos,
                          target_pos=self.target_pad_pos)

    def target_position(self):
        if self.task_spec.place == "tray":
            return self.tray_pos.copy()
        if self.task_spec.place == "target":
            return self.target_pad_pos.copy()
        return None

    def _info(self, success: bool, state: dict | None = None) -> dict:
        state = state or self._state()
        tp = self.target_position()
        return {
            "success": bool(success),
            "safety_stop": self.safety_stop,
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


# ---- gymnasium registration: parrot/Grasp-v0, parrot/PickPlace-v0, ... -------------------
GYM_IDS = {"grasp": "parrot/Grasp-v0", "lift": "parrot/Lift-v0",
           "pick_place": "parrot/PickPlace-v0", "place_on_target": "parrot/PlaceOnTarget-v0"}


def register_gym_envs() -> None:
    """Register one id per task (keyword arguments of gymnasium.make go to EnvConfig, e.g.
    objects="heldout"); the episode limit is the env's own max_steps (truncated)."""
    for task, env_id in GYM_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point="sim.env:ParrotEnv", kwargs={"task": task})


register_gym_envs()
