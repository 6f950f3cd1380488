"""Checkpoints of an agent run: one orbax step per evaluation under <workdir>/checkpoints, each
holding the seed-stacked train states and the run's progress record (curve so far, failed
seeds, baselines) as one composite, so the two commit together or not at all. The last two
steps are kept.

Orbax commits a step by renaming a finished temporary directory: a run killed mid-save leaves
the previous step and a stray temporary, which `latest_step` ignores. A committed step whose
files were damaged later (a truncated copy, a disk error) is skipped by
`restore_newest_intact`, which falls back to the step before, and `set_aside` moves it out of
the way (to <workdir>/damaged-checkpoints) so that the run can save that step again.
"""

import pathlib
import shutil
from typing import Any, NamedTuple

import orbax.checkpoint as ocp

from lfjax import processes
from lfjax.checkpoints.space import tree_bytes, writing
from lfjax.checkpoints.trees import UnreadableCheckpointError, restore_tree

CHECKPOINTS = "checkpoints"
DAMAGED = "damaged-checkpoints"


def run_checkpoints(workdir: pathlib.Path) -> ocp.CheckpointManager:
    """The orbax manager of <workdir>/checkpoints: one step per evaluation, the last two kept."""
    options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
    return ocp.CheckpointManager((pathlib.Path(workdir) / CHECKPOINTS).absolute(), options=options)


def committed_steps(workdir: pathlib.Path) -> list[int]:
    """The committed steps in <workdir>/checkpoints, sorted, read from the directory names
    alone (creates nothing, reads no file; orbax's temporaries are not steps)."""
    directory = pathlib.Path(workdir) / CHECKPOINTS
    if not directory.is_dir():
        return []
    return sorted(int(d.name) for d in directory.iterdir() if d.name.isdigit() and d.is_dir())


def step_dir(workdir: pathlib.Path, step: int) -> pathlib.Path:
    """Where step ``step``'s files are (the train states under "state")."""
    return pathlib.Path(workdir) / CHECKPOINTS / str(step)


def save_run_checkpoint(manager: ocp.CheckpointManager, step: int, states: Any,
                        progress_record: dict) -> None:
    """Saves states (a pytree of arrays) and progress_record (JSON-able) as step ``step``,
    blocking until both are committed. DiskFullError when the disk fills (the steps before
    are intact)."""
    where = pathlib.Path(manager.directory) / str(step)
    with writing(where, tree_bytes(states) + tree_bytes(progress_record)):
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
    UnreadableCheckpointError when it is unreadable."""
    try:
        return manager.restore(step, args=ocp.args.Composite(progress=ocp.args.JsonRestore()))["progress"]
    except Exception as e:
        where = step_dir(workdir, step)
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        raise UnreadableCheckpointError(
            f"checkpoint {where} has no readable progress record ({reason})", where / "progress",
            f"no readable progress record ({reason})",
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


class RestoredRun(NamedTuple):
    """What `restore_newest_intact` found: the step, its states and progress record, and the
    newer steps it skipped as (step, why)."""

    step: int
    states: Any
    record: dict
    skipped: list[tuple[int, str]]


def restore_newest_intact(manager: ocp.CheckpointManager, workdir: pathlib.Path,
                          like: Any) -> RestoredRun | None:
    """The newest committed step whose states and record read back whole, or None when there is
    no step at all. A step that cannot be read (truncated or corrupt files:
    UnreadableCheckpointError, in any process of the job) is skipped for the one before; one of
    another structure is not (CheckpointError: a different configuration, not damage). Raises
    UnreadableCheckpointError naming every step when none reads back."""
    steps = sorted(manager.all_steps(), reverse=True)
    skipped = []
    for step in steps:
        def read(step=step):
            return restore_run_states(workdir, step, like), restore_run_record(manager, workdir, step)

        try:
            # Every process reads its own shards: all skip a step if any could not read it.
            states, record = processes.together(read, (UnreadableCheckpointError,))
        except (UnreadableCheckpointError, processes.OtherProcessError) as e:
            skipped.append((step, getattr(e, "reason", str(e))))
            continue
        return RestoredRun(step, states, record, skipped)
    if not steps:
        return None
    where = pathlib.Path(workdir) / CHECKPOINTS
    raise UnreadableCheckpointError(
        f"no checkpoint in {where} can be read ({'; '.join(f'{s}: {why}' for s, why in skipped)}); "
        f"they may be truncated or corrupt: move {where} away to start the run over, or restore "
        "them from a copy",
        where, "no intact checkpoint",
    )


def set_aside(manager: ocp.CheckpointManager, workdir: pathlib.Path, step: int) -> pathlib.Path:
    """Moves the damaged step ``step`` to <workdir>/damaged-checkpoints/<step>[-k] (process 0;
    every process returns after it), so that the run can commit that step again; returns where
    it went. The files are kept for whoever wants to look at them."""
    target = pathlib.Path(workdir) / DAMAGED / str(step)
    k = 1
    while target.exists():
        k += 1
        target = target.with_name(f"{step}-{k}")
    if processes.is_leader():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(step_dir(workdir, step)), str(target))
    processes.barrier(f"lfjax-checkpoint-{step}-set-aside")
    manager.reload()
    return target
