"""Everything lfjax keeps on disk between runs: pytrees and JSON (`trees`), pretrained flows
(`flows`) and the checkpoints of an agent run (`runs`). Every restore compares the stored
structure, shapes and dtypes with what the caller expects before reading anything.
"""

from lfjax.checkpoints.flows import PretrainedFlow, load_pretrained_flow, save_pretrained_flow
from lfjax.checkpoints.runs import (
    CHECKPOINTS,
    restore_latest,
    restore_run_states,
    run_checkpoints,
    save_run_checkpoint,
    step_dir,
)
from lfjax.checkpoints.trees import (
    CheckpointError,
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
    "as_json",
    "PretrainedFlow",
    "load_pretrained_flow",
    "quiet_orbax",
    "read_json",
    "restore_latest",
    "restore_run_states",
    "restore_tree",
    "run_checkpoints",
    "save_pretrained_flow",
    "save_run_checkpoint",
    "save_tree",
    "step_dir",
    "write_json",
]
