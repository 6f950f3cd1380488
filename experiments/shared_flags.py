"""The command-line flags that `experiments.run` and `experiments.pretrain_flow` share.

Kept apart from experiments.cli (which imports JAX) so that defining flags, and
rejecting bad ones, stays instant.
"""

import absl.logging  # noqa: F401  (defines --log_dir, taken over by define_tracking)
from absl import flags

# Flag name -> FlowTrainConfig field.
FLOW_FLAGS = {"flow_epochs": "num_epochs", "flow_batch_size": "batch_size", "flow_blocks": "num_blocks"}


def define() -> None:
    """Defines the shared flags in absl's global registry (once per program)."""
    flags.DEFINE_integer("flow_epochs", None, "Flow-pretraining epochs (default: per dataset).")
    flags.DEFINE_integer("flow_batch_size", None, "Flow-pretraining batch size (paper: 1024).")
    flags.DEFINE_integer("flow_blocks", None, "Flow blocks (paper: 12).")
    flags.DEFINE_bool("progress", True, "Show progress bars.")
    flags.DEFINE_bool("distributed", False, "Join a multi-process job (jax.distributed): every "
                      "host runs this same command; see README.md.")


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
