"""Expert-labelled states of the prior's own rollouts: one round of DAgger (Ross et al. 2011).

A prior trained on scripted episodes sees only the states the scripted policy visits; in closed
loop its small errors take it to states it never saw (the gripper a few centimetres beside the
object), where it closes anyway. Here the prior acts (random z, or its mode z = 0, alternating
by episode) and the scripted policy labels every visited state with what it would do there:
its noise-free plan plus the collection's N(0, noise) noise, so the labels have the same
spread as the scripted episodes the prior learnt from.

An episode records the reach only: it ends at the first state where the scripted policy
would close the gripper (that state's label is the close) or the prior closes it (that
state's label is the scripted policy's answer, often "keep reaching"). The scripted policy's
later phases (lift, carry, release) follow its own close and have no label for a gripper
closed beside the object. The labeller keeps no memory between steps: it aims at the object
nearest the TCP (or the task's target object), so it follows whichever object the prior
heads for.
"""

from __future__ import annotations

import numpy as np

from parrot_core.action_space import GRIPPER_THRESHOLD
from parrot_core.arm_state import state_from_info
from parrot_core.dataset import Episode
from sim.prior_diagnostics import horizontal_distances
from sim.scripted import GRIP_CLOSE, ScriptedPolicy


def dagger_learners(prior_dir) -> list:
    """The two ways the prior acts in DAgger episodes: (name, episode seed -> sampler)."""
    from sim.prior_viz import load_prior_forward, prior_mode, prior_sampler

    forward = load_prior_forward(prior_dir)
    return [("random z", lambda seed: prior_sampler(forward, np.random.default_rng([seed, 2]))),
            ("mode", lambda seed: prior_mode(forward))]


def nearest_object(info) -> str:
    """The object the scripted policy aims at from this state: the task's target, else the
    one nearest the TCP in x-y."""
    if info["target_object"]:
        return info["target_object"]
    distances = horizontal_distances(info)
    return min(distances, key=distances.get)


def expert_plan(expert: ScriptedPolicy, info) -> np.ndarray:
    """The scripted policy's noise-free action in this state, from the state alone."""
    expert.reset()
    expert.object = nearest_object(info)
    return expert.plan(info)


def dagger_episode(env, learner, expert: ScriptedPolicy, seed: int, learner_name: str) -> Episode:
    """Run ``learner(obs, info) -> action`` from scene ``seed``; label each state with ``expert``.

    Returns the labelled reach (at least one step). ``expert.rng`` draws the label noise."""
    obs, info = env.reset(seed=seed)
    images, labels, states = [], [], []
    done = False
    while not done:
        plan = expert_plan(expert, info)
        images.append(obs)
        states.append(state_from_info(info))
        labels.append(expert.add_noise(plan))
        if plan[6] == GRIP_CLOSE:
            break  # the scripted policy closes here: the reach is over
        action = learner(obs, info)
        if float(action[6]) < -GRIPPER_THRESHOLD:
            break  # the prior closes here: its state is labelled, what follows has no label
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return Episode(
        np.stack(images), np.stack(labels), np.zeros(len(labels), np.float32),
        attrs={"task": env.config.task, "objects": list(info["object_names"]),
               "object_pool": env.config.objects, "seed": int(seed), "success": False,
               "source": f"dagger ({learner_name})", "target_object": info["target_object"] or "",
               "steps": len(labels)},
        states=np.stack(states))
