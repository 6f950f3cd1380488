"""Pretrain the conditional flow p(a|s) on an offline dataset, many seeds at once.

    python -m experiments.pretrain_flow --env=maze2d-umaze --num_seeds=3 --workdir=runs/umaze

Prints train and validation NLL per epoch, keeps each seed's lowest-validation-NLL
parameters, and saves them with the state normalization to ``<workdir>/flow``.
"""

import dataclasses
import sys
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from jax.experimental import multihost_utils
from tqdm import tqdm

from experiments import shared_flags
from lfjax import pretraining, sharding
from lfjax.flows import ConditionalFlow, FlowParams

PRESETS = {"paper": pretraining.FlowTrainConfig, "quick": pretraining.FlowTrainConfig.quick}


class PretrainOutput(NamedTuple):
    flow: ConditionalFlow
    best_params: FlowParams  # leading seed axis [N]
    history: list[dict]  # one entry per epoch: {"epoch", "train_nll" [N], "val_nll" [N], ...}
    best_epoch: np.ndarray  # [N]
    best_val_nll: np.ndarray  # [N]
    seconds: float


def pretrain(
    config: pretraining.FlowTrainConfig,
    actions: jnp.ndarray,
    states: jnp.ndarray,
    *,
    num_epochs: int,
    num_seeds: int = 1,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> PretrainOutput:
    """Trains ``num_seeds`` flows on actions [N, A] given normalized states [N, S].

    The data goes to the device once; each epoch is one jitted, vmapped call.
    """
    config.validate()
    if num_epochs < 1 or num_seeds < 1:
        raise ValueError(f"num_epochs and num_seeds must be positive, got {num_epochs}, {num_seeds}")
    actions = jnp.asarray(actions, jnp.float32)
    states = jnp.asarray(states, jnp.float32)
    flow = config.make_flow(actions.shape[-1], states.shape[-1])
    split_key, seeds_key = jax.random.split(jax.random.PRNGKey(seed))
    data = pretraining.make_flow_data(split_key, actions, states, config.validation_fraction)
    num_train = int(data.train_indices.shape[0])
    if config.batch_size > num_train:
        raise ValueError(
            f"flow batch size {config.batch_size} is larger than the {num_train} training rows; "
            "pass a smaller --flow_batch_size"
        )
    init_keys, epoch_keys = jax.random.split(seeds_key)
    state = jax.jit(jax.vmap(lambda k: pretraining.init(config, flow, k, data)))(
        jax.random.split(init_keys, num_seeds)
    )
    # Seeds split over the devices, the data copied once to each (one device: committed).
    trained_in_each_process = jax.process_count() > 1 and num_seeds % jax.device_count() != 0
    if trained_in_each_process:
        # A shared flow across hosts: every process trains the same one on its own devices
        # (same keys, same data) rather than leave all but one process idle.
        mesh = sharding.seed_mesh(num_seeds, jax.local_devices())
        log(f"{num_seeds} flow(s) do not split over the {jax.device_count()} devices of "
            f"{jax.process_count()} processes: each process trains the same flow(s) on "
            f"{mesh.size} of its own devices")
    else:
        mesh = sharding.seed_mesh(num_seeds)
        if note := sharding.mesh_note(num_seeds, mesh):
            log(note)
    state, data = sharding.shard_seeds(state, mesh), sharding.replicate(data, mesh)
    # The old state is dead after each epoch, so the new one reuses its buffers.
    train_epoch = jax.jit(
        jax.vmap(pretraining.make_train(config, flow, num_train), in_axes=(0, 0, None)),
        donate_argnums=0,
    )
    history = []
    start = time.perf_counter()
    bar = tqdm(range(num_epochs), desc="flow", unit="epoch", disable=not progress, file=sys.stdout)
    for epoch in bar:
        keys = jax.random.split(jax.random.fold_in(epoch_keys, epoch), num_seeds)
        keys = sharding.shard_seeds(keys, mesh)
        state, metrics = train_epoch(state, keys, data)
        metrics = sharding.to_host(metrics)
        record = {"epoch": epoch + 1, **{k: np.asarray(v).tolist() for k, v in metrics.items()}}
        history.append(record)
        bar.set_postfix(train_nll=f"{np.mean(metrics['train_nll']):.3f}", val_nll=f"{np.mean(metrics['val_nll']):.3f}")
        line = (
            f"flow epoch {epoch + 1}/{num_epochs}: train NLL {_fmt(metrics['train_nll'])}, "
            f"validation NLL {_fmt(metrics['val_nll'])}"
        )
        (tqdm.write if progress else log)(line)
        bad = np.flatnonzero(~np.asarray(metrics["finite"]))
        if bad.size:
            log(
                f"warning: flow seed(s) {bad.tolist()} produced non-finite NLL in epoch {epoch + 1}; "
                "their best earlier parameters are kept"
            )
    bar.close()
    state = sharding.to_host(state)
    if trained_in_each_process:
        # Identical on identical hardware; elsewhere rounding may differ, and every process
        # must decode with the flow that process 0 saves.
        state = multihost_utils.broadcast_one_to_all(state)
    return PretrainOutput(
        flow=flow,
        best_params=jax.tree_util.tree_map(jnp.asarray, state.best_params),
        history=history,
        best_epoch=np.asarray(state.best_epoch) + 1,
        best_val_nll=np.asarray(state.best_val_nll),
        seconds=time.perf_counter() - start,
    )


def _fmt(values) -> str:
    values = np.asarray(values)
    if values.size == 1:
        return f"{values.item():.4f}"
    return f"{values.mean():.4f} (seeds: {', '.join(f'{v:.3f}' for v in values)})"


def config_from_flags(preset: str, overrides: dict) -> pretraining.FlowTrainConfig:
    """A preset with the non-None overrides applied."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    config = PRESETS[preset]()
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("env", None, "Dataset name, e.g. maze2d-umaze (see lfjax.data registry).")
    flags.DEFINE_integer("num_seeds", 1, "Flows trained at once (vmapped).")
    flags.DEFINE_integer("seed", 0, "Base random seed.")
    flags.DEFINE_string("preset", "paper", "paper: SPEC.md settings; quick: minutes on a CPU.")
    flags.DEFINE_string("workdir", None, "The flow goes to <workdir>/flow (default runs/<env>-flow).")
    shared_flags.define()  # --flow_epochs --flow_batch_size --flow_blocks --progress --distributed


def main(argv) -> int:
    import pathlib

    from experiments import pipeline

    if (status := pipeline.start_cli(argv)) is not None:
        return status
    from lfjax import data
    from lfjax.config import RunConfig

    try:
        data.get_env_spec(FLAGS.env)
        flow = config_from_flags(FLAGS.preset, shared_flags.flow_overrides())
        # --num_seeds flows, one per seed (experiments.run reuses them with --flow_per_seed).
        config = RunConfig(
            env=FLAGS.env, flow=flow, num_seeds=FLAGS.num_seeds, seed=FLAGS.seed, flow_per_seed=True
        )
        config.validate()
    except ValueError as e:
        return pipeline.fail(str(e))
    flow_dir = pathlib.Path(FLAGS.workdir or f"runs/{FLAGS.env}-flow") / "flow"
    # Only after the flags are known good: joining waits for every process of the job.
    try:
        pipeline.join_processes(FLAGS.distributed)
    except pipeline.UserError as e:
        return pipeline.fail(str(e))
    from experiments import hosts

    log, progress = pipeline.job_output(FLAGS.progress)

    def stages():
        hosts.together(lambda: pipeline.check_writable(flow_dir, "--workdir"), pipeline.USER_ERRORS)
        hosts.check_shared_directory(flow_dir, "--workdir")
        loaded = pipeline.shared_dataset(FLAGS.env, generate_if_missing=False, log=log)
        pipeline.flow_stage(config, loaded, flow_dir, progress=progress, log=log)
        return 0

    return pipeline.run_stages(
        stages, after_lost_contact="Rerun the same command on every host (a flow saved completely is reused)"
    )


if __name__ == "__main__":
    define_flags()
    flags.mark_flag_as_required("env")
    app.run(lambda argv: sys.exit(main(argv)))
