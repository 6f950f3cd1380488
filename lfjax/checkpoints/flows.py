"""Saving and loading a pretrained flow: parameters (one set per seed), the state
normalization it was trained with, and a JSON record of how it was made.

Layout of a flow directory::

    flow.json     flow architecture, training config, dataset, curves, best epochs
    params/       orbax checkpoint: {"params": [N, ...] per leaf, "state_mean": [S], "state_std": [S]}
"""

import dataclasses
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp

from lfjax import processes
from lfjax.checkpoints.trees import CheckpointError, read_json, restore_tree, save_tree, write_json
from lfjax.flows import ConditionalFlow, FlowParams

FLOW_JSON = "flow.json"
PARAMS_DIR = "params"


@dataclasses.dataclass(frozen=True)
class PretrainedFlow:
    """A loaded flow: ``params`` has a leading seed axis of size ``num_seeds``."""

    flow: ConditionalFlow
    params: FlowParams
    state_mean: jnp.ndarray  # [S]
    state_std: jnp.ndarray  # [S]
    info: dict[str, Any]

    @property
    def num_seeds(self) -> int:
        return int(jax.tree_util.tree_leaves(self.params)[0].shape[0])


def flow_to_dict(flow: ConditionalFlow) -> dict:
    return dataclasses.asdict(flow)


def flow_from_dict(d: dict) -> ConditionalFlow:
    return ConditionalFlow(**{**d, "hidden_dims": tuple(d["hidden_dims"])})


def save_pretrained_flow(
    directory: str | os.PathLike,
    flow: ConditionalFlow,
    params: FlowParams,
    state_mean: jnp.ndarray,
    state_std: jnp.ndarray,
    info: dict[str, Any],
) -> None:
    """Writes params (leading seed axis) and stats first, then flow.json: a directory with a
    flow.json always has complete params.

    In a multi-process job (jax.distributed) every process calls it with the same values:
    orbax writes the arrays once, process 0 writes flow.json, and all return after that.
    """
    directory = pathlib.Path(directory)
    # As numpy: orbax refuses process-local jax arrays in a multi-process job.
    tree = jax.device_get({"params": params, "state_mean": state_mean, "state_std": state_std})
    save_tree(directory / PARAMS_DIR, tree)
    num_seeds = int(jax.tree_util.tree_leaves(params)[0].shape[0])
    if processes.is_leader():
        write_json(directory / FLOW_JSON, {"flow": flow_to_dict(flow), "num_seeds": num_seeds, **info})
    processes.barrier("lfjax-flow-saved")


def load_pretrained_flow(directory: str | os.PathLike) -> PretrainedFlow:
    """Loads what :func:`save_pretrained_flow` wrote, checking every array's shape and dtype."""
    directory = pathlib.Path(directory)
    if not (directory / FLOW_JSON).is_file():
        raise CheckpointError(
            f"no pretrained flow in {directory} (no {FLOW_JSON}); run "
            "`python -m experiments.pretrain_flow --env=... --workdir=...` first"
        )
    meta = read_json(directory / FLOW_JSON)
    try:
        flow = flow_from_dict(meta["flow"])
        num_seeds = int(meta["num_seeds"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{directory / FLOW_JSON} is missing or has a bad field: {e}") from e
    like = {
        "params": _params_like(flow, num_seeds),
        "state_mean": jax.ShapeDtypeStruct((flow.state_dim,), jnp.float32),
        "state_std": jax.ShapeDtypeStruct((flow.state_dim,), jnp.float32),
    }
    tree = restore_tree(directory / PARAMS_DIR, like)
    info = {k: v for k, v in meta.items() if k not in ("flow", "num_seeds")}
    return PretrainedFlow(flow, tree["params"], tree["state_mean"], tree["state_std"], info)


def _params_like(flow: ConditionalFlow, num_seeds: int):
    """Shapes and dtypes of [num_seeds]-stacked params, without computing anything."""
    actions = jnp.zeros((2, flow.action_dim))
    states = jnp.zeros((2, flow.state_dim))
    one = jax.eval_shape(flow.init, jax.random.PRNGKey(0), actions, states)
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct((num_seeds, *x.shape), x.dtype), one
    )
