"""The command-line flags that `experiments.run`, `experiments.table` and
`experiments.pretrain_flow` share, and the RunConfig they build from them.

Kept apart from experiments.cli (which imports JAX) so that defining flags, and
rejecting bad ones, stays instant: lfjax.configs is imported only when a config is built.
"""

import dataclasses

import absl.logging  # noqa: F401  (defines --log_dir, taken over by define_tracking)
from absl import flags

# Flag name -> FlowTrainConfig field.
FLOW_FLAGS = {"flow_epochs": "num_epochs", "flow_batch_size": "batch_size", "flow_blocks": "num_blocks",
              "flow_saturation_noise": "saturation_noise"}
# Overrides of AWACConfig fields and of RunConfig fields (define_overrides).
# The critics' stability options (AWACConfig; off in the paper preset).
STABILITY_FLAGS = ("critic_layer_norm", "num_critics", "td_target_clip", "tau_final", "tau_half_life",
                   "n_step", "latent_actor_loss", "actor_q_weight", "actor_regression")
AGENT_FLAGS = ("batch_size", "awac_lambda", "tau", "actor_lr", "critic_lr", "actor_ema",
               *STABILITY_FLAGS)
SCHEDULE_FLAGS = ("num_updates", "eval_every", "eval_episodes", "final_eval_episodes")
# --preset's default: chosen by the devices JAX sees (experiments.cli.choose_preset).
AUTO = "auto"


def define() -> None:
    """Defines the shared flags in absl's global registry (once per program)."""
    flags.DEFINE_integer("flow_epochs", None, "Flow-pretraining epochs (default: per dataset).")
    flags.DEFINE_integer("flow_batch_size", None, "Flow-pretraining batch size (paper: 1024).")
    flags.DEFINE_integer("flow_blocks", None, "Flow blocks (paper: 12).")
    flags.DEFINE_float("flow_saturation_noise", None, "Spread the data's saturated action entries "
                       "(|a| = 1) uniformly over [1 - d, 1] before pretraining the flow (paper: 0).")
    flags.DEFINE_bool("progress", True, "Show progress bars.")
    flags.DEFINE_bool("distributed", False, "Join a multi-process job (jax.distributed): every "
                      "host runs this same command; see README.md.")


def define_preset() -> None:
    flags.DEFINE_string(
        "preset", AUTO, "auto (default): quick when JAX sees no accelerator (CPU only), paper "
        "when it sees a GPU or TPU, or the preset an existing run in --workdir was made with; "
        "paper: SPEC.md settings (1M updates, hours on a CPU); quick: minutes on a CPU.")


def define_overrides() -> None:
    """--preset and the overrides of the main hyperparameters (None: the preset's value)."""
    define_preset()
    flags.DEFINE_integer("num_updates", None, "AWAC updates per seed.")
    flags.DEFINE_integer("eval_every", None, "Updates between evaluations and checkpoints.")
    flags.DEFINE_integer("eval_episodes", None, "Evaluation episodes per seed (every evaluation but the last).")
    flags.DEFINE_integer("final_eval_episodes", None, "Evaluation episodes per seed at the last "
                         "evaluation (the final score; default 50).")
    flags.DEFINE_integer("batch_size", None, "AWAC batch size.")
    flags.DEFINE_float("awac_lambda", None, "AWAC temperature lambda.")
    flags.DEFINE_float("tau", None, "Target-critic Polyak step.")
    flags.DEFINE_float("actor_lr", None, "Actor learning rate.")
    flags.DEFINE_float("critic_lr", None, "Critic learning rate.")
    flags.DEFINE_bool("critic_layer_norm", None, "LayerNorm before every hidden ReLU of the critics.")
    flags.DEFINE_integer("num_critics", None, "Critics in the ensemble (paper: 2); targets use "
                         "their minimum.")
    flags.DEFINE_bool("td_target_clip", None, "Clip TD targets to the returns the data's reward "
                      "range allows.")
    flags.DEFINE_float("tau_final", None, "Decay tau toward this value (needs --tau_half_life).")
    flags.DEFINE_float("tau_half_life", None, "Updates per halving of tau - tau_final.")
    flags.DEFINE_integer("n_step", None, "TD targets summing n rewards along the stored "
                         "trajectory before bootstrapping (paper: 1).")
    flags.DEFINE_bool("latent_actor_loss", None, "The actor's weighted L1 regression in the flow's "
                      "latent space, |z - encode(a)|, instead of through the decoder (paper: off).")
    flags.DEFINE_float("actor_q_weight", None, "Add -beta * mean Q(s, pi(s)) / mean|Q| to the "
                       "actor's loss, this beta (paper: none).")
    flags.DEFINE_enum("actor_regression", None, ["l1", "l2"], "The actor's advantage-weighted "
                      "regression onto the data's actions: l1 (paper), or l2 (squared error: the "
                      "weighted mean instead of the weighted median).")
    flags.DEFINE_float("actor_ema", None, "Act with a Polyak average of the actor, this step per "
                       "update (training unchanged).")


def define_tracking() -> None:
    """Run tracking (experiments/tracking.py); each needs its extra, imported only when asked
    for. --log_dir is absl.logging's own flag ("directory to write logfiles into"; absl writes
    there only when a program asks it to log to files, which nothing here does): taken over,
    not redefined."""
    flags.declare_key_flag("log_dir")
    flags.FLAGS["log_dir"].help = (
        "Write TensorBoard event files here: per evaluation the scores per seed and their mean, "
        "losses, Q, advantage weights, updates/s; the flow's NLL per epoch. Needs lfjax[tensorboard].")
    flags.DEFINE_bool("wandb", False, "Log the same to a Weights & Biases run (files in "
                      "<workdir>/wandb; WANDB_MODE=offline needs no network or account). Needs "
                      "lfjax[wandb].")
    flags.DEFINE_string("wandb_project", "lfjax", "W&B project of --wandb.")


def flow_overrides() -> dict:
    """FlowTrainConfig fields set on the command line: {field: value}."""
    return {field: getattr(flags.FLAGS, name) for name, field in FLOW_FLAGS.items()
            if getattr(flags.FLAGS, name) is not None}


def check_preset(name: str) -> None:
    """ValueError unless ``name`` is auto or a preset of lfjax.configs.PRESETS."""
    from lfjax.configs import PRESETS

    if name != AUTO and name not in PRESETS:
        raise ValueError(f"unknown --preset={name!r}; choose one of: {', '.join((AUTO, *PRESETS))}")


def config_from_flags(env: str, algo: str, preset: str, **run):
    """The RunConfig of ``env`` and ``algo`` under ``preset`` (a name of lfjax.configs.PRESETS,
    already resolved from auto) with the overrides of define_overrides() and define()'s flow
    flags, and the RunConfig fields in ``run`` (num_seeds, seed, sweep, ...; None: the
    preset's). ValueError naming the first invalid setting."""
    from lfjax.configs import PRESETS

    FLAGS = flags.FLAGS
    config = PRESETS[preset](env)
    agent = dataclasses.replace(
        config.agent, **{k: getattr(FLAGS, k) for k in AGENT_FLAGS if getattr(FLAGS, k) is not None})
    flow = dataclasses.replace(config.flow, **flow_overrides())
    schedule = {k: getattr(FLAGS, k) for k in SCHEDULE_FLAGS if getattr(FLAGS, k) is not None}
    run = {k: v for k, v in run.items() if v is not None}
    config = dataclasses.replace(config, agent=agent, flow=flow, algo=algo, **schedule, **run)
    config.validate()
    return config
