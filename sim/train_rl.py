"""`parrot train-rl`: SAC on a twin task, as PARROT (in the prior's z) or a baseline.

    parrot train-rl --task grasp --objects heldout --algo parrot --prior PRIOR_RUN_OR_EXPORT \\
        --steps 20000 --seed 0 --out runs/grasp/parrot/s0
    parrot train-rl --task grasp --objects heldout --algo sac    --steps 20000 --seed 0 --out ...
    parrot train-rl --task grasp --objects heldout --algo bc-sac --data DATASET --steps 20000 ...

* ``parrot``: the policy picks z; the env executes ``a = f(z; s)`` of the frozen prior, loaded
  from a ``parrot train-prior`` run dir or a ``parrot export`` ONNX dir (``--prior``). The
  policy starts at the prior's base distribution N(0, I) (parrot_core.sac).
* ``sac``: SAC from scratch, directly in the [-1, 1] action space.
* ``bc-sac``: behaviour cloning of the same policy on the prior's dataset (``--data``,
  ``--bc-steps`` gradient steps), then SAC fine-tuning.

All three use the same observation, networks, hyperparameters and env-step budget
(``--steps``). The observation (``--observation``) is by default the frozen prior's image
features and arm state (parrot_core.prior_features: computed once per env step, MLP actor and
critics, fast on a CPU; ``--prior`` names that prior for every algorithm), or the raw image
through per-network CNNs as in the paper (Figure 7; for GPU runs). The other defaults are the
paper's (Table 1); the size flags exist for small machines.
Output: see ``parrot_core.rl_loop`` (config.json, metrics.jsonl, checkpoint.pt). ``--resume``
continues an interrupted run from its last checkpoint (or extends a finished one to a larger
``--steps``). Plot with ``parrot plot-curves``; export with ``parrot export-policy``.
"""

from __future__ import annotations

from pathlib import Path

from sim.tasks import TASKS

ALGOS = ("parrot", "sac", "bc-sac")
OBSERVATIONS = ("prior-features", "image", "privileged")
# MLP sizes by observation: on frozen features, 128-128 runs > 100 updates/s at batch 256 on one
# core (benchmarks/rl_throughput.py); on images, the paper's (Figure 7).
DEFAULT_HIDDEN = {"prior-features": "128,128", "image": "1024,512,256", "privileged": "128,128"}


class TrainRLError(RuntimeError):
    """A train-rl invocation that cannot run as given."""


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise TrainRLError(f"expected comma-separated integers, got {text!r}") from None


def add_arguments(parser) -> None:
    from sim.env import EnvConfig, add_scene_arguments

    g = parser.add_argument_group("run")
    g.add_argument("--task", required=True, choices=tuple(TASKS))
    g.add_argument("--objects", default="heldout", choices=("train", "heldout"),
                   help="object pool of the new task (default heldout: objects the prior never saw)")
    add_scene_arguments(g)
    g.add_argument("--terminate-on-success", action="store_true",
                   help="end episodes at the first success (default: run all steps, reward 1 for "
                        "every step the task holds; with SAC's positive entropy bonus in z, "
                        "ending early is a loss the agent learns to avoid)")
    g.add_argument("--algo", required=True, choices=ALGOS)
    g.add_argument("--steps", type=int, required=True,
                   help="environment-step budget (0: only evaluate the initial policy, e.g. BC alone)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True, help="run directory")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    g.add_argument("--prior", help="prior run dir (parrot train-prior) or ONNX export dir: PARROT acts "
                                   "through it; with --observation prior-features every algorithm "
                                   "observes its frozen image features")
    g.add_argument("--observation", choices=OBSERVATIONS, default="prior-features",
                   help="prior-features (default): the frozen prior's image features (+ arm state) "
                        "in replay, MLP actor and critics, fast on a CPU; image: the paper's "
                        "per-network CNNs on raw images (for GPU runs); privileged: arm state and "
                        "object positions from the twin (sanity check of the RL, never exported)")
    g.add_argument("--prior-backend", choices=("auto", "onnx", "torch"), default="auto",
                   help="auto: ONNX if the dir holds prior_forward.onnx, else the torch checkpoint")
    g.add_argument("--data", help="bc-sac: the prior's dataset directory")
    g.add_argument("--data-tasks", type=lambda t: tuple(v for v in t.split(",") if v), default=(),
                   help="bc-sac: clone only these tasks' episodes, as the prior's --tasks did "
                        "(default: every episode)")
    g.add_argument("--bc-steps", type=int, default=100_000,
                   help="bc-sac: most BC gradient steps before SAC (default 100000)")
    g.add_argument("--bc-patience", type=int, default=3,
                   help="bc-sac: stop BC after this many checks (every 500 steps) without a lower "
                        "held-out NLL, at its best weights (0: exactly --bc-steps)")
    g.add_argument("--eval-every", type=int, default=5000, help="env steps between evaluations")
    g.add_argument("--eval-episodes", type=int, default=20, help="fixed-seed episodes per evaluation")
    g.add_argument("--checkpoint-every", type=int, help="env steps between checkpoints (default: --eval-every)")
    g.add_argument("--max-steps", type=int, default=EnvConfig.max_steps, help="episode length (paper: 25)")
    g.add_argument("--image-size", type=int, default=EnvConfig.image_size)
    g.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    g.add_argument("--device", default="auto", help="auto (cuda if present, else cpu) | cpu | cuda[:N]")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    g.add_argument("--tensorboard", action="store_true",
                   help="also log to OUT/tensorboard (needs the tensorboard package)")
    # defaults from SACConfig, the one source of them (torch-free, so --help stays fast)
    from parrot_core.sac_config import (AWAC_ADVANTAGES, CRITIC_ESTIMATES, CRITIC_INPUTS,
                                        POLICY_UPDATES, REGULARIZERS, SACConfig)
    d = SACConfig()
    s = parser.add_argument_group("SAC (defaults: paper Table 1 / Figure 7)")
    s.add_argument("--batch-size", type=int, default=d.batch_size)
    s.add_argument("--hidden", help="MLP sizes of policy and Q (default: "
                                    + ", ".join(f"{k} {v}" for k, v in DEFAULT_HIDDEN.items()) + ")")
    s.add_argument("--channels", type=int, default=d.conv_channels,
                   help="conv channels of policy and Q CNNs")
    s.add_argument("--lr", type=float, default=d.policy_lr, help="policy, Q and alpha learning rate")
    s.add_argument("--policy-lr", type=float,
                   help="the policy's learning rate alone (default: --lr); a faster policy follows "
                        "the AWAC step's reweighted replay more closely")
    s.add_argument("--gamma", type=float, default=d.gamma)
    s.add_argument("--learning-starts", type=int, default=d.learning_starts)
    s.add_argument("--updates-per-step", type=float, default=d.updates_per_step)
    s.add_argument("--n-step", type=int, default=d.n_step,
                   help="n-step returns, counted in decisions (1: the paper's one-step)")
    s.add_argument("--hold-steps", type=int, default=d.hold_steps,
                   help="env steps each chosen action (z for parrot) is held for; parrot still maps "
                        "the held z through the prior on every new image (1: choose every step)")
    s.add_argument("--no-time-limit-bootstrap", dest="bootstrap_time_limit", action="store_false",
                   default=d.bootstrap_time_limit,
                   help="an episode cut at --max-steps ends the return instead of bootstrapping "
                        "from its last observation (with --n-step >= --max-steps: Monte Carlo "
                        "targets)")
    s.add_argument("--target-update-period", type=int, default=d.target_update_period)
    s.add_argument("--tau", type=float, default=d.tau, help="1 = hard copy every period (Table 1)")
    s.add_argument("--buffer-size", type=int, default=d.buffer_size)
    s.add_argument("--init-alpha", type=float, default=d.init_alpha,
                   help="initial entropy temperature (rlkit: 1)")
    s.add_argument("--mean-reg", type=float, default=d.mean_reg,
                   help="weight of the policy's pre-tanh mean penalty (rlkit: 1e-3); larger keeps "
                        "the PARROT policy near the prior's mode until Q has a real gradient")
    s.add_argument("--target-entropy", type=float,
                   help=f"automatic entropy tuning target (default -{d.action_dim})")
    s.add_argument("--regularizer", choices=REGULARIZERS,
                   help="what alpha weighs: entropy (SAC; default for sac, bc-sac) or kl_base, "
                        "KL(pi || N(0, I)) in z (default for parrot)")
    s.add_argument("--target-kl", type=float, default=d.target_kl,
                   help="kl_base: the KL to N(0, I) (nats) automatic tuning keeps")
    s.add_argument("--no-critic-regularizer", dest="critic_regularizer", action="store_false",
                   default=d.critic_regularizer,
                   help="the critic learns the task's return alone (no soft value); only the "
                        "actor pays alpha * regularizer")
    s.add_argument("--policy-update", choices=POLICY_UPDATES, default=d.policy_update,
                   help="sac: the policy follows Q's gradient; awac: it re-weights the actions "
                        "it tried by exp(advantage / --awac-lambda)")
    s.add_argument("--awac-lambda", type=float, default=d.awac_lambda, help="awac: advantage temperature")
    s.add_argument("--awac-value-samples", type=int, default=d.awac_value_samples,
                   help="awac: z samples of the policy whose mean Q is the advantage's baseline")
    s.add_argument("--awac-advantage", choices=AWAC_ADVANTAGES, default=d.awac_advantage,
                   help="awac: the replayed z's worth in its advantage: the critics' Q (q) or "
                        "the return they regress to (return)")
    s.add_argument("--critic-estimate", choices=CRITIC_ESTIMATES, default=d.critic_estimate,
                   help="what the policy's update reads of the two critics: min (SAC) or mean "
                        "(their targets keep the min)")
    s.add_argument("--critic-input", choices=CRITIC_INPUTS, default=d.critic_input,
                   help="what the critics see of the policy's z: z itself, or the action the "
                        "prior maps it to (parrot on prior-features)")
    s.add_argument("--actor-ema", type=float, default=d.actor_ema, metavar="DECAY",
                   help="evaluate and export an exponential moving average of the policy's "
                        "weights with this decay per update, e.g. 0.999 (0: the trained weights)")
    s.add_argument("--critic-layer-norm", action="store_true", default=d.critic_layer_norm,
                   help="LayerNorm in the critics' hidden layers (against Q overestimation)")


def _bc_data(path: str, image_size: int, features=None, tasks: tuple[str, ...] = ()) -> dict:
    """The BC dataset as the agent observes it: images, or their prior features."""
    from parrot_core.dataset import load_arrays

    arrays = load_arrays(path, tasks)
    if arrays["images"].shape[1:3] != (image_size, image_size):
        raise TrainRLError(f"{path}: images are {arrays['images'].shape[1:3]}, --image-size is {image_size}")
    obs = arrays["images"]
    if features is not None:
        if features.module.state_dim and "states" not in arrays:
            raise TrainRLError(f"{path}: episodes without arm states; the prior's features need them")
        obs = features.batch(arrays["images"], arrays.get("states"))
    return {"obs": obs, "actions": arrays["actions"].astype("float32"), "episode": arrays["episode"]}


def make_env_factory(task: str, objects: str, image_size: int, max_steps: int,
                     terminate_on_success: bool = False, **scene):
    """`scene`: sim.env.scene_config(args), the scene flags as EnvConfig fields."""
    from sim.env import EnvConfig, ParrotEnv

    config = EnvConfig(task=task, objects=objects, image_size=image_size, max_steps=max_steps,
                       terminate_on_success=terminate_on_success, **scene)
    ParrotEnv(config).close()  # fail here, before any training, on a bad configuration
    return lambda: ParrotEnv(config)


def main(args) -> int:
    import torch

    from parrot_core.action_transform import IdentityTransform, load_prior_transform
    from parrot_core.camera import check_view, twin_camera
    from parrot_core.device import pick_device
    from parrot_core.onnx_prior import trained_camera_view
    from parrot_core.rl_loop import LoopConfig, image_observation, make_agent, train
    from parrot_core.sac import config_for_algo

    torch.set_num_threads(max(1, args.threads))
    features_obs = args.observation == "prior-features"
    if (args.algo == "parrot" or features_obs) and not args.prior:
        raise TrainRLError(f"--algo {args.algo} with --observation {args.observation} needs --prior "
                           f"(a prior run dir or ONNX export dir)")
    if args.algo != "parrot" and args.prior and not features_obs:
        raise TrainRLError(f"--prior is only used by --algo parrot or --observation prior-features, "
                           f"not {args.algo} on {args.observation}")
    if args.observation == "privileged" and args.algo == "bc-sac":
        raise TrainRLError("--observation privileged: the prior's dataset has no object positions "
                           "to clone from; use parrot or sac")
    if args.critic_input == "action" and not (args.algo == "parrot" and features_obs):
        raise TrainRLError("--critic-input action needs --algo parrot with --observation "
                           "prior-features: the prior maps z to the action from the stored features")
    if args.algo == "bc-sac" and not args.data:
        raise TrainRLError("--algo bc-sac needs --data DATASET (the prior's training data)")
    if args.algo != "bc-sac" and args.data:
        raise TrainRLError(f"--data is only used by --algo bc-sac, not {args.algo}")
    camera = twin_camera(args.camera_file)
    if args.prior:  # the twin must render what the prior's images showed
        check_view(trained_camera_view(args.prior), camera, f"the prior {args.prior}")
    device = pick_device(args.device)
    observe = image_observation
    if features_obs:
        from parrot_core.prior_features import PriorFeatures, load_prior_module
        observe = PriorFeatures(load_prior_module(args.prior), device)
    elif args.observation == "privileged":
        from sim.privileged_observation import PrivilegedObservation
        observe = PrivilegedObservation(args.num_objects)
    cfg = config_for_algo(
        args.algo, image_size=args.image_size, conv_channels=args.channels,
        hidden_sizes=_int_tuple(args.hidden or DEFAULT_HIDDEN[args.observation]),
        batch_size=args.batch_size, policy_lr=args.lr if args.policy_lr is None else args.policy_lr,
        q_lr=args.lr, alpha_lr=args.lr, bc_lr=args.lr,
        gamma=args.gamma, learning_starts=args.learning_starts, updates_per_step=args.updates_per_step,
        n_step=args.n_step, hold_steps=args.hold_steps, bootstrap_time_limit=args.bootstrap_time_limit,
        target_update_period=args.target_update_period, tau=args.tau,
        buffer_size=args.buffer_size, init_alpha=args.init_alpha, target_entropy=args.target_entropy,
        mean_reg=args.mean_reg, obs_dim=0 if observe is image_observation else observe.dim,
        target_kl=args.target_kl, policy_update=args.policy_update, awac_lambda=args.awac_lambda,
        awac_value_samples=args.awac_value_samples, awac_advantage=args.awac_advantage,
        critic_estimate=args.critic_estimate, critic_input=args.critic_input,
        critic_layer_norm=args.critic_layer_norm, critic_regularizer=args.critic_regularizer,
        actor_ema=args.actor_ema,
        **({"regularizer": args.regularizer} if args.regularizer else {}))
    transform = (load_prior_transform(args.prior, prefer=args.prior_backend) if args.algo == "parrot"
                 else IdentityTransform())
    # loaded only if BC runs (a resumed or finished run skips the dataset)
    bc_data = ((lambda: _bc_data(args.data, args.image_size, observe if features_obs else None,
                                 tuple(args.data_tasks))) if args.algo == "bc-sac" else None)
    run_meta = {"algo": args.algo, "task": args.task, "objects": args.objects, "seed": args.seed,
                "target_object": args.target_object, "num_objects": args.num_objects,
                "camera_file": args.camera_file, "randomize": args.randomize,
                "camera_view": camera.view_record(),
                "randomize_scale": args.randomize_scale,
                "terminate_on_success": args.terminate_on_success, "observation": args.observation,
                "max_steps": args.max_steps, "image_size": args.image_size,
                "prior": str(Path(args.prior).resolve()) if args.prior else None,
                "data": str(Path(args.data).resolve()) if args.data else None,
                "bc_steps": args.bc_steps if args.algo == "bc-sac" else 0}
    loop = LoopConfig(total_steps=args.steps, seed=args.seed, eval_every=args.eval_every,
                      eval_episodes=args.eval_episodes, checkpoint_every=args.checkpoint_every,
                      bc_steps=run_meta["bc_steps"], bc_patience=args.bc_patience,
                      progress=not args.no_progress,
                      tensorboard=args.tensorboard)
    agent = make_agent(cfg, args.seed, device=device,
                       action_of=observe.action_of if args.critic_input == "action" else None)
    from sim.env import scene_config
    factory = make_env_factory(args.task, args.objects, args.image_size, args.max_steps,
                               args.terminate_on_success, **scene_config(args))
    row = train(agent, factory, transform, args.out, loop, resume=args.resume, run_meta=run_meta,
                bc_data=bc_data, observe=observe)
    print(f"parrot train-rl: {args.out}: {args.algo} on {args.task}/{args.objects} seed {args.seed}: "
          f"env step {row.get('env_step')}, eval success {row.get('eval_success', float('nan')):.2f} "
          f"over {row.get('eval_episodes', 0)} episodes")
    return 0
