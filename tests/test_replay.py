"""`parrot replay`: exported models run over a recorded bag as the policy node would run them,
and the report compares their commands with the recorded ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rosbags")
from ros_helpers import REPO  # noqa: E402

from parrot_cli.main import main as parrot  # noqa: E402

POLICY, PRIOR = REPO / "models" / "policy_grasp", REPO / "models" / "prior_xarm6_48px"
TOPICS = {"/camera/image_raw": "sensor_msgs/msg/Image",
          "/parrot/cmd/twist": "geometry_msgs/msg/TwistStamped",
          "/parrot/cmd/gripper": "sensor_msgs/msg/JointState",
          "/parrot/arm/state": "sensor_msgs/msg/JointState",
          "/parrot/episode/event": "std_msgs/msg/String"}
RATE_HZ = 10.0


def as_rosbags(msg, typename: str):
    """An rclpy message as the same rosbags message (rosbags writes the exact CDR a
    subscription receives; rclpy's serialize_message may leave padding after it)."""
    from rosbags.typesys import Stores, get_typestore
    ts = get_typestore(Stores.ROS2_KILTED)
    fields = {}
    for name, kind in msg.get_fields_and_field_types().items():
        value = getattr(msg, name)
        if hasattr(value, "get_fields_and_field_types"):
            pkg, typ = kind.split("/")
            fields[name] = as_rosbags(value, f"{pkg}/msg/{typ}")
        elif kind.startswith("sequence<") and kind != "sequence<string>":
            dtype = {"sequence<uint8>": np.uint8, "sequence<double>": np.float64}[kind]
            fields[name] = np.asarray(value, dtype)
        else:
            fields[name] = list(value) if kind == "sequence<string>" else value
    return ts.types[typename](**fields)


def cdr(msg, typename: str) -> bytes:
    from rosbags.typesys import Stores, get_typestore
    ts = get_typestore(Stores.ROS2_KILTED)
    return bytes(ts.serialize_cdr(as_rosbags(msg, typename), typename))


def write_bag(path, episodes: list[dict], with_state: bool = True) -> None:
    """A recorder-style bag: per episode start/end markers, and per step a 64x64 image, the
    command stamped with the image's stamp, and the arm state."""
    from parrot_bringup import interfaces as itf
    from parrot_bringup.recorder import BagFile
    bag = BagFile(path, TOPICS)
    ns = 1_000_000_000
    for k, ep in enumerate(episodes):
        stamps = [ns + t * 100_000_000 for t in range(len(ep["images"]))]
        start = itf.EpisodeEvent("start", k, {"first_stamp_ns": stamps[0], "task": "grasp",
                                              "seed": k, "control_rate_hz": RATE_HZ})
        bag.write("/parrot/episode/event", stamps[0] - 1, cdr(start.to_msg(), TOPICS["/parrot/episode/event"]))
        for t, stamp in enumerate(stamps):
            bag.write("/camera/image_raw", stamp,
                      cdr(itf.numpy_to_image(ep["images"][t], stamp), TOPICS["/camera/image_raw"]))
            if with_state:
                bag.write("/parrot/arm/state", stamp,
                          cdr(itf.arm_state_msg(ep["states"][t], stamp), TOPICS["/parrot/arm/state"]))
            twist, grip = itf.action_to_msgs(ep["actions"][t], stamp, RATE_HZ)
            bag.write("/parrot/cmd/twist", stamp + 1, cdr(twist, TOPICS["/parrot/cmd/twist"]))
            bag.write("/parrot/cmd/gripper", stamp + 1, cdr(grip, TOPICS["/parrot/cmd/gripper"]))
        end = itf.EpisodeEvent("end", k, {"last_stamp_ns": stamps[-1], "steps": len(stamps),
                                          "success": True})
        bag.write("/parrot/episode/event", stamps[-1] + 2, cdr(end.to_msg(), TOPICS["/parrot/episode/event"]))
        ns = stamps[-1] + 1_000_000_000
    bag.close()


def episodes_the_models_would_command(n_episodes: int = 2, steps: int = 6) -> list[dict]:
    """Random 64x64 images and arm states, with the commands the shipped grasp policy and
    prior compute from them after the node's resize: a bag a perfect teacher recorded."""
    from parrot_bringup import interfaces as itf
    from parrot_bringup.policy_models import Models
    models = Models("policy", str(PRIOR), str(POLICY), seed=0)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n_episodes):
        images = rng.integers(0, 256, (steps, 64, 64, 3), dtype=np.uint8)
        states = np.column_stack([rng.uniform(0.3, 0.5, steps), rng.uniform(-0.1, 0.1, steps),
                                  rng.uniform(0.1, 0.2, steps), np.zeros(steps)]).astype(np.float32)
        actions = np.stack([models(itf.resize_for_model(im, models.image_size), st)
                            for im, st in zip(images, states)])
        out.append({"images": images, "states": states, "actions": actions})
    return out


def test_replay_of_the_models_own_commands_agrees_and_offsets_show_per_axis(tmp_path, capsys):
    """A bag of the models' own commands replays with zero error and full gripper agreement;
    the same images with every recorded dx moved by 0.2 show a 0.2 (6 mm/step) dx error and
    no error elsewhere. The plot and JSON summary are written."""
    episodes = episodes_the_models_would_command()
    write_bag(tmp_path / "same", episodes)
    out = tmp_path / "same.png"
    assert parrot(["replay", str(tmp_path / "same"), "--policy", str(POLICY), "--prior", str(PRIOR),
                   "--out", str(out)]) == 0
    s = json.loads(out.with_suffix(".json").read_text())
    assert s["episodes"] == 2 and s["steps"] == 12
    assert max(s["median_abs_error"].values()) < 1e-4
    assert s["gripper_agreement"] == 1.0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert "gripper: same state after 100.0% of steps" in capsys.readouterr().out

    for ep in episodes:
        ep["actions"][:, 0] = np.where(ep["actions"][:, 0] > 0, ep["actions"][:, 0] - 0.2,
                                       ep["actions"][:, 0] + 0.2)
    write_bag(tmp_path / "moved", episodes)
    assert parrot(["replay", str(tmp_path / "moved"), "--policy", str(POLICY), "--prior",
                   str(PRIOR), "--out", str(tmp_path / "moved.png")]) == 0
    s = json.loads((tmp_path / "moved.json").read_text())
    assert s["median_abs_error"]["dx"] == pytest.approx(0.2, abs=1e-3)
    assert s["median_abs_error_per_step"]["dx"] == pytest.approx(6.0, abs=0.05)  # 0.2 x 3 cm
    assert max(v for k, v in s["median_abs_error"].items() if k != "dx") < 1e-4


def test_replay_counts_what_the_safety_filter_would_refuse(tmp_path):
    """With a parameters file allowing 0.1 mm per step, every replayed command that moves is
    counted as refused by translation_limit; the default filter's count is what it is, but a
    file without safety entries is refused by name."""
    import yaml
    episodes = episodes_the_models_would_command(1, 5)
    write_bag(tmp_path / "bag", episodes)
    params = tmp_path / "hardware.yaml"
    params.write_text(yaml.safe_dump({"hardware_bridge": {"ros__parameters": {
        "safety.max_translation_m": 0.0001}}}))
    assert parrot(["replay", str(tmp_path / "bag"), "--policy", str(POLICY), "--prior", str(PRIOR),
                   "--safety-params", str(params), "--out", str(tmp_path / "r.png")]) == 0
    s = json.loads((tmp_path / "r.json").read_text())
    moving = int(np.sum(np.linalg.norm(episodes[0]["actions"][:, :3] * 0.03, axis=1) > 0.0001))
    assert moving > 0 and s["safety_refusals"].get("translation_limit") == moving

    params.write_text(yaml.safe_dump({"policy": {"ros__parameters": {"mode": "policy"}}}))
    assert parrot(["replay", str(tmp_path / "bag"), "--policy", str(POLICY), "--prior", str(PRIOR),
                   "--safety-params", str(params), "--out", str(tmp_path / "r2.png")]) == 1


def test_replay_names_what_is_missing(tmp_path, capsys):
    """Models that read the arm state over a bag without it, and a bag without episodes, are
    one-line errors naming the problem; nothing is plotted."""
    write_bag(tmp_path / "nostate", episodes_the_models_would_command(1, 3), with_state=False)
    assert parrot(["replay", str(tmp_path / "nostate"), "--policy", str(POLICY), "--prior",
                   str(PRIOR), "--out", str(tmp_path / "a.png")]) == 1
    assert "need the arm state" in capsys.readouterr().err
    write_bag(tmp_path / "empty", [])
    assert parrot(["replay", str(tmp_path / "empty"), "--policy", str(POLICY), "--prior",
                   str(PRIOR), "--out", str(tmp_path / "b.png")]) == 1
    assert "no episode to replay" in capsys.readouterr().err
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "b.png").exists()


def test_bag2dataset_with_the_camera_file_stores_the_twins_framing(tmp_path):
    """Full 640x480 frames of the twin's camera in a bag, converted with --camera-file, are
    the 48x48 observations the twin renders itself (within a few levels on average)."""
    pytest.importorskip("pybullet")
    from parrot_core.dataset import load_episodes
    from sim.env import EnvConfig, ParrotEnv
    env = ParrotEnv(EnvConfig())
    rng = np.random.default_rng(1)
    frames, observations, actions = [], [], []
    try:
        obs, _ = env.reset(seed=4)
        for _ in range(3):
            frames.append(env.render_camera_frame())
            observations.append(obs)
            actions.append(rng.uniform(-0.5, 0.5, 7).astype(np.float32))
            obs, *_ = env.step(actions[-1])
    finally:
        env.close()
    write_bag(tmp_path / "bag", [{"images": np.stack(frames), "actions": np.stack(actions),
                                  "states": np.zeros((3, 4), np.float32)}])
    camera = REPO / "ros2_ws" / "src" / "parrot_bringup" / "config" / "camera.yaml"
    assert parrot(["bag2dataset", str(tmp_path / "bag"), "--out", str(tmp_path / "data"),
                   "--camera-file", str(camera)]) == 0
    (episode,) = load_episodes(tmp_path / "data")
    assert episode.images.shape == (3, 48, 48, 3)
    assert np.abs(episode.images.astype(int) - np.stack(observations)).mean() < 8
