"""Everything lfjax keeps on disk between runs: pytrees and JSON (`trees`), pretrained flows and
their pretraining checkpoints (`flows`), the checkpoints of an agent run (`runs`), the lock
that lets one process at a time write in a directory (`locks`), and a full disk recognized as
one `DiskFullError` however it surfaces (`space`). Every restore compares the stored
structure, shapes and dtypes with what the caller expects before reading anything.
"""

from lfjax.checkpoints.flows import (
    FlowProgress,
    PartialFlowError,
    PretrainedFlow,
    load_pretrained_flow,
    save_pretrained_flow,
)
from lfjax.checkpoints.locks import (
    DirectoryBusyError,
    check_free,
    describe_holder,
    hold_directory,
    lock_holder,
)
from lfjax.checkpoints.runs import (
    CHECKPOINTS,
    RestoredRun,
    committed_steps,
    restore_latest,
    restore_newest_intact,
    restore_run_record,
    restore_run_states,
    run_checkpoints,
    save_run_checkpoint,
    set_aside,
    step_dir,
)
from lfjax.checkpoints.space import DiskFullError, is_disk_full, tree_bytes, writing
from lfjax.checkpoints.trees import (
    CheckpointError,
    UnreadableCheckpointError,
    as_json,
    quiet_orbax,
    read_json,
    restore_tree,
    save_tree,
    write_json,
)

__all__ = [
    "CHECKPOINTS",
    "CheckpointError",
    "DirectoryBusyError",
    "DiskFullError",
    "FlowProgress",
    "PartialFlowError",
    "as_json",
    "check_free",
    "committed_steps",
    "describe_holder",
    "hold_directory",
    "is_disk_full",
    "lock_holder",
    "PretrainedFlow",
    "RestoredRun",
    "UnreadableCheckpointError",
    "load_pretrained_flow",
    "quiet_orbax",
    "read_json",
    "restore_latest",
    "restore_newest_intact",
    "restore_run_record",
    "restore_run_states",
    "restore_tree",
    "run_checkpoints",
    "save_pretrained_flow",
    "save_run_checkpoint",
    "save_tree",
    "set_aside",
    "step_dir",
    "tree_bytes",
    "write_json",
    "writing",
]
