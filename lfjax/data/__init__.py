"""Datasets: the environment registry, maze2d generation (D4RL's recipe), generated stand-ins
for the locomotion datasets (NOT D4RL data), converting D4RL's hdf5 files (medium-replay) and
loading Minari datasets into device memory.

    spec = get_env_spec("maze2d-umaze")           # registry entry, spec.make_eval_env(seed)
    generate_dataset("maze2d-umaze")              # = python -m experiments.make_dataset ...
    data = load_dataset("maze2d-umaze")           # data.transitions, data.state_stats, ...
    load_dataset("hopper-medium")                 # Minari's mujoco/hopper/medium-v0, or the
                                                  # stand-in, with a SubstituteDatasetWarning
    convert_d4rl_hdf5("hopper-medium-replay", "hopper_medium_replay-v2.hdf5")
                                                  # = python -m experiments.convert_d4rl ...
"""

from lfjax.data.d4rl_hdf5 import D4RLFileError, convert_d4rl_hdf5
from lfjax.data.generate import generate_dataset
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
    "D4RLFileError",
    "DatasetError",
    "DatasetExistsError",
    "DatasetPathError",
    "DatasetMismatchError",
    "EnvSpec",
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
    "convert_d4rl_hdf5",
    "datasets_root",
    "env_names",
    "generate_dataset",
    "get_env_spec",
    "load_dataset",
    "missing_dataset_message",
    "normalize_states",
    "outdated_datasets",
    "outdated_note",
    "split",
]
