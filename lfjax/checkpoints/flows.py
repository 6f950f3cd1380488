"""Saving and loading a pretrained flow: parameters (one set per seed), the state
normalization it was trained with, and a JSON record of how it was made; and the checkpoints of
a pretraining still under way, so that a killed one resumes.

Layout of a flow directory::

    flow.json     flow architecture, training config, dataset, curves, best epochs
    params/       orbax checkpoint: {"params": [N, ...] per leaf, "state_mean": [S], "state_std": [S]}
    progress/     while pretraining: orbax steps <epoch>/ (the last two), each the whole train
                  state and the history so far (FlowProgress); removed once the flow is saved
    lfjax.lock    who writes here (lfjax.checkpoints.locks)

A flow is finished when flow.json is there: it is written last, and removed before params/ is
replaced, so a directory with a flow.json always has that flow's complete params, and a
pretraining that was killed (progress/ only) is never taken for a finished flow.
"""

import dataclasses
import os
import pathlib
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from lfjax import processes
from lfjax.checkpoints.space import tree_bytes, writing
from lfjax.checkpoints.trees import (
    CheckpointError,
    as_json,
    read_json,
    restore_tree,
    save_tree,
    write_json,
)
from lfjax.flows import ConditionalFlow, FlowParams

FLOW_JSON = "flow.json"
PARAMS_DIR = "params"
PROGRESS_DIR = "progress"


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
    if processes.is_leader():
        # The flow saved here before (other settings) stops being a finished flow now: a kill
        # while params/ is replaced must not leave its flow.json over the new params.
        (directory / FLOW_JSON).unlink(missing_ok=True)
    processes.barrier("lfjax-flow-unmarked")
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


class PartialFlowError(CheckpointError):
    """The flow directory holds an unfinished pretraining of the flow asked for, and the caller
    did not ask to resume it; the message says how to resume it or start over."""


class FlowProgress:
    """The checkpoints of one flow's pretraining in <flow_dir>/progress: an orbax step per
    epoch (the last two kept), each the train state as a pytree of host arrays and a JSON
    record (the history so far, ...), committed together. ``identity`` (dataset, settings,
    seed) is stored with every step: steps of another identity are never restored.

    `lfjax.pretraining.pretrain` calls :meth:`restore` once and :meth:`save` after every epoch.
    In a multi-process job every process makes it and calls it, as orbax needs.
    """

    def __init__(self, flow_dir: str | os.PathLike, identity: dict[str, Any]):
        self.directory = (pathlib.Path(flow_dir) / PROGRESS_DIR).absolute()
        self.identity = as_json(identity)
        self._manager = None

    def _steps(self) -> ocp.CheckpointManager:
        if self._manager is None:
            options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        return self._manager

    def _record(self, epoch: int) -> dict:
        try:
            return self._steps().restore(
                epoch, args=ocp.args.Composite(record=ocp.args.JsonRestore())
            )["record"]
        except Exception as e:
            raise CheckpointError(
                f"{self.directory / str(epoch)} has no readable record ({e}); delete "
                f"{self.directory} to start the pretraining over"
            ) from e

    def latest(self) -> tuple[int, bool] | None:
        """(epoch, whether it is of this identity) of the latest committed step, or None."""
        if not self.directory.is_dir():
            return None
        epoch = self._steps().latest_step()
        if epoch is None:
            return None
        return epoch, self._record(epoch).get("identity") == self.identity

    def restore(self, like: Any) -> tuple[Any, dict] | None:
        """(tree, record) of the latest step when it is of this identity, else None. ``like``:
        the tree's structure, shapes and dtypes (`restore_tree` refuses anything else)."""
        latest = self.latest()
        if latest is None or not latest[1]:
            return None
        epoch = latest[0]
        tree = restore_tree(self.directory / str(epoch) / "state", like)
        return tree, self._record(epoch)

    def save(self, epoch: int, tree: Any, record: dict) -> None:
        """Commits ``tree`` (host arrays) and ``record`` (JSON-able) as step ``epoch``; blocks.
        DiskFullError when the disk fills (the epochs before are intact)."""
        manager = self._steps()
        record = {**record, "identity": self.identity}
        with writing(self.directory / str(epoch), tree_bytes(tree) + tree_bytes(record)):
            manager.save(epoch, args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), record=ocp.args.JsonSave(record),
            ))
            manager.wait_until_finished()

    def discard(self) -> None:
        """Removes every step (process 0; all processes return after it)."""
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        if processes.is_leader() and self.directory.exists():
            shutil.rmtree(self.directory)
        processes.barrier("lfjax-flow-progress-discarded")
