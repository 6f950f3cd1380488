"""Datasets: the environment registry, transitions, and loading Minari datasets into device
memory. (Making datasets — maze2d by D4RL's recipe, locomotion stand-ins, D4RL's hdf5 files —
is `lfjax.datagen`.) Every load is checked first (`lfjax.data.validation`): non-finite values,
actions outside the action space and empty episodes are an InvalidDatasetError.

    spec = get_env_spec("maze2d-umaze")           # registry entry, spec.make_eval_env(seed)
    data = load_dataset("maze2d-umaze")           # data.transitions, data.state_stats, ...
    load_dataset("hopper-medium")                 # Minari's mujoco/hopper/medium-v0, or the
                                                  # stand-in, with a SubstituteDatasetWarning
"""

from lfjax.data.loading import (
    LoadedDataset,
    load_dataset,
    missing_dataset_message,
    outdated_datasets,
    outdated_note,
)
from lfjax.data.minari_io import (
    CorruptDatasetError,
    DatasetError,
    DatasetExistsError,
    DatasetPathError,
    DatasetMismatchError,
    MissingDatasetError,
    OutdatedDatasetError,
    SubstituteDatasetWarning,
    datasets_root,
)
from lfjax.data.registry import REGISTRY, EnvSpec, UnknownEnvError, env_names, get_env_spec
from lfjax.data.validation import InvalidDatasetError
from lfjax.data.transitions import (
    STD_FLOOR,
    StateStats,
    Transitions,
    compute_state_stats,
    concatenate,
    normalize_states,
    split,
)

__all__ = [
    "CorruptDatasetError",
    "DatasetError",
    "DatasetExistsError",
    "DatasetPathError",
    "DatasetMismatchError",
    "EnvSpec",
    "InvalidDatasetError",
    "LoadedDataset",
    "MissingDatasetError",
    "OutdatedDatasetError",
    "REGISTRY",
    "STD_FLOOR",
    "StateStats",
    "SubstituteDatasetWarning",
    "Transitions",
    "UnknownEnvError",
    "compute_state_stats",
    "concatenate",
    "datasets_root",
    "env_names",
    "get_env_spec",
    "load_dataset",
    "missing_dataset_message",
    "normalize_states",
    "outdated_datasets",
    "outdated_note",
    "split",
]
