"""Making datasets, as Minari datasets where Minari keeps them: maze2d by D4RL's recipe
(`maze2d`), small stand-ins for the locomotion datasets in the real MuJoCo envs (`locomotion`;
NOT D4RL data), and D4RL's own hdf5 files converted (`d4rl_hdf5`: medium-replay, which Minari
lacks). `lfjax.data.load_dataset` then loads them.

    generate_dataset("maze2d-umaze")              # = python -m experiments.make_dataset ...
    convert_d4rl_hdf5("hopper-medium-replay", "hopper_medium_replay-v2.hdf5")
                                                  # = python -m experiments.convert_d4rl ...
"""

from lfjax.datagen.d4rl_hdf5 import D4RLFileError, convert_d4rl_hdf5
from lfjax.datagen.generate import generate_dataset

__all__ = ["D4RLFileError", "convert_d4rl_hdf5", "generate_dataset"]
