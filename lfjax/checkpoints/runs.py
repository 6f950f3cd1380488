"""Checkpoints of an agent run: one orbax step per evaluation under <workdir>/checkpoints, each
holding the seed-stacked train states and the run's progress record (curve so far, failed
seeds, baselines) as one composite, so the two commit together or not at all. The last two
steps are kept.

Orbax commits a step by renaming a finished temporary directory: a run killed mid-save leaves
the previous step and a stray temporary, which `latest_step` ignores.
"""

import pathlib
from typing import Any

import orbax.checkpoint as ocp

from lfjax.checkpoints.trees import CheckpointError, restore_tree

CHECKPOINTS = "checkpoints"


def run_checkpoints(workdir: pathlib.Path) -> ocp.CheckpointManager:
    """The orbax manager of <workdir>/checkpoints: one step per evaluation, the last two kept."""
    options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
    return ocp.CheckpointManager((pathlib.Path(workdir) / CHECKPOINTS).absolute(), options=options)


def step_dir(workdir: pathlib.Path, step: int) -> pathlib.Path:
    """Where step ``step``'s files are (the train states under "state")."""
    return pathlib.Path(workdir) / CHECKPOINTS / str(step)


def save_run_checkpoint(manager: ocp.CheckpointManager, step: int, states: Any,
                        progress_record: dict) -> None:
    """Saves states (a pytree of arrays) and progress_record (JSON-able) as step ``step``,
    blocking until both are committed."""
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(states), progress=ocp.args.JsonSave(progress_record)
        ),
    )
    manager.wait_until_finished()


def restore_run_states(workdir: pathlib.Path, step: int, like: Any) -> Any:
    """Step ``step``'s train states, checked against ``like`` (`restore_tree`: structure,
    shapes and dtypes must match; the arrays come back placed like ``like``'s leaves)."""
    return restore_tree(step_dir(workdir, step) / "state", like)


def restore_run_record(manager: ocp.CheckpointManager, workdir: pathlib.Path, step: int) -> dict:
    """Step ``step``'s progress record (curve so far, failed seeds, baselines);
    CheckpointError when it is unreadable."""
    try:
        return manager.restore(step, args=ocp.args.Composite(progress=ocp.args.JsonRestore()))["progress"]
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {step_dir(workdir, step)} has no readable progress record ({e})"
        ) from e


def restore_latest(manager: ocp.CheckpointManager, workdir: pathlib.Path,
                   like: Any) -> tuple[int, Any, dict] | None:
    """(step, states, progress record) of the latest committed step, or None when there is none.
    CheckpointError when it does not match ``like`` or has no readable progress record."""
    step = manager.latest_step()
    if step is None:
        return None
    states = restore_run_states(workdir, step, like)  # refuses mismatched shapes/structure
    return step, states, restore_run_record(manager, workdir, step)
