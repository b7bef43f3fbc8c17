"""A small student network that imitates a deployed policy, for robot compute.

The deployed PARROT policy runs the prior's paper-size image encoder, the SAC actor and the flow
on every image (about 1 ms back to back on one core, several times that after the idle gap
between 30 Hz frames). The student maps the same inputs, image uint8 (B, H, W, 3) and arm state
(B, 4), straight to the teacher's deterministic 7D action with three strided convolutions and a
small MLP. ``sim/distill_policy.py`` trains it by DAgger in the twin; ``export_student`` writes
it in the policy export format (``outputs: action``), so `parrot eval-policy`, the `policy`
node and the deploy bundle run it like any exported policy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from parrot_core.action_space import ACTION_DIM
from parrot_core.arm_state import STATE_DIM
from parrot_core.export import weights_sha256
from parrot_core.export_policy import DEFAULT_OPSET, _export, graph_meta, write_checked_meta
from parrot_core.onnx_policy import META_FORMAT, META_VERSION, POLICY_FILE


@dataclass
class StudentConfig:
    image_size: int = 48
    channels: tuple[int, int, int] = (16, 32, 32)
    hidden: int = 128


class StudentPolicy(nn.Module):
    """image uint8 (B, H, W, 3) RGB, arm state (B, 4) -> action (B, 7)."""

    def __init__(self, cfg: StudentConfig = StudentConfig()):
        super().__init__()
        self.cfg = cfg
        c1, c2, c3 = cfg.channels
        self.encoder = nn.Sequential(  # three stride-2 convolutions: 48 -> 24 -> 12 -> 6
            nn.Conv2d(3, c1, 5, 2, 2), nn.ReLU(), nn.Conv2d(c1, c2, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, 2, 1), nn.ReLU(), nn.Flatten())
        side = -(-cfg.image_size // 8)
        self.head = nn.Sequential(
            nn.Linear(c3 * side * side + STATE_DIM, cfg.hidden), nn.ReLU(),
            nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, ACTION_DIM))

    def forward(self, image, state):
        x = image.permute(0, 3, 1, 2).float() / 255.0
        return self.head(torch.cat([self.encoder(x), state], dim=1))


class Frames:
    """The labelled frames DAgger aggregates: images, arm states, the teacher's actions."""

    def __init__(self):
        self.images, self.states, self.actions = [], [], []

    def add(self, image: np.ndarray, state: np.ndarray, action: np.ndarray) -> None:
        self.images.append(image)
        self.states.append(np.asarray(state, np.float32))
        self.actions.append(np.asarray(action, np.float32))

    def __len__(self) -> int:
        return len(self.images)

    def save(self, path: Path) -> None:
        np.savez(path, images=np.stack(self.images), states=np.stack(self.states),
                 actions=np.stack(self.actions))

    @classmethod
    def load(cls, path: Path) -> "Frames":
        frames = cls()
        with np.load(path) as z:
            frames.images, frames.states, frames.actions = (list(z["images"]), list(z["states"]),
                                                            list(z["actions"]))
        return frames

    def tensors(self):
        return (torch.from_numpy(np.stack(self.images)), torch.from_numpy(np.stack(self.states)),
                torch.from_numpy(np.stack(self.actions)))


def fit(student: StudentPolicy, optimizer, frames: Frames, steps: int, batch_size: int,
        generator: torch.Generator) -> float:
    """``steps`` Adam steps of mean squared error to the teacher's actions; the last loss."""
    images, states, actions = frames.tensors()
    student.train()
    loss = torch.zeros(())
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch_size,), generator=generator)
        loss = ((student(images[idx], states[idx]) - actions[idx]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    student.eval()
    return float(loss.detach())


def act_fn(student: StudentPolicy):
    """(image (H, W, 3) uint8, state (4,)) -> action (7,) with torch, for the DAgger rollouts."""
    def act(image: np.ndarray, state: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return student(torch.from_numpy(image[None]),
                           torch.from_numpy(np.asarray(state, np.float32)[None]))[0].numpy()
    return act


def export_student(student: StudentPolicy, out_dir, teacher_meta: dict, info: dict,
                   opset: int = DEFAULT_OPSET) -> dict:
    """policy.onnx + policy_meta.json (outputs ``action``), checked against torch."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    student = student.eval()
    s = student.cfg.image_size
    gen = torch.Generator().manual_seed(0)
    examples = (torch.randint(0, 256, (2, s, s, 3), dtype=torch.uint8, generator=gen),
                torch.tensor([[0.4, 0.0, 0.1, 0.0], [0.35, 0.05, 0.2, 1.0]]))
    _export(student, examples, out / POLICY_FILE, "action", "dynamo", opset)
    meta = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "algo": "student",
        "task": teacher_meta.get("task"),
        "objects": teacher_meta.get("objects"),
        "outputs": "action",
        "observation": "image_and_state",
        "deterministic": "the student imitates the teacher's deterministic action",
        "student": asdict(student.cfg),
        "teacher": {"algo": teacher_meta.get("algo"),
                    "weights_sha256": teacher_meta.get("weights_sha256"),
                    "prior": teacher_meta.get("prior")},
        "distillation": info,
        "prior": None,
        "camera_view": teacher_meta.get("camera_view"),  # the twin's view it was trained in
        "weights_sha256": weights_sha256(student),
        **graph_meta(out, s, STATE_DIM, "action", "dynamo", opset),
    }
    return write_checked_meta(student, out, meta)
