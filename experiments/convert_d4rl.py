"""Converts D4RL's hdf5 file of a medium-replay dataset into the Minari dataset lfjax loads,
where Minari keeps datasets ($MINARI_DATASETS_PATH, default ~/.minari/datasets):

    python -m experiments.convert_d4rl --env=hopper-medium-replay \
        --hdf5=/path/to/hopper_medium_replay-v2.hdf5 [--overwrite]

writes lfjax/hopper-medium-replay-v0 (halfcheetah / hopper / walker2d). Minari publishes no
medium-replay; medium and expert come from `minari download mujoco/<env>/...`, maze2d from
experiments.make_dataset. lfjax/datagen/d4rl_hdf5.py says how episodes are cut and which final
observation each gets.
"""

from __future__ import annotations

import sys

from absl import app, flags

_ENV = flags.DEFINE_string(
    "env", None, "Which dataset: halfcheetah-medium-replay, hopper-medium-replay or "
    "walker2d-medium-replay."
)
_HDF5 = flags.DEFINE_string("hdf5", None, "D4RL's file, e.g. hopper_medium_replay-v2.hdf5.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace an existing dataset.")
flags.mark_flag_as_required("env")
flags.mark_flag_as_required("hdf5")


def main(argv: list[str]) -> int:
    from experiments import cli

    if (status := cli.start_cli(argv)) is not None:
        return status
    from lfjax import data, datagen
    from lfjax.data import minari_io

    try:
        minari_id = datagen.convert_d4rl_hdf5(_ENV.value, _HDF5.value, overwrite=_OVERWRITE.value)
    except (data.DatasetError, ValueError) as e:  # UnknownEnvError and D4RLFileError included
        return cli.fail(str(e))
    info = minari_io.read_metadata(minari_id)["lfjax"]
    print(
        f"wrote {minari_id} to {minari_io.dataset_dir(minari_id)}: {info['num_steps']} "
        f"transitions in {info['num_episodes']} episodes ({info['num_terminations']} "
        f"terminated, {info['num_truncations']} truncated) from {info['source_file']} "
        f"(sha256 {info['source_sha256'][:16]}…); final observations: "
        f"{info['final_observation']}"
        + (f"; {info['num_dropped_steps']} step(s) dropped" if info["num_dropped_steps"] else "")
        + (
            f"; {info['num_unflagged_boundaries']} episode boundary(ies) without a terminal or "
            f"timeout flag cut as truncations"
            if info["num_unflagged_boundaries"] else ""
        )
        + f".\nNext: python -m experiments.run --env={_ENV.value}"
    )
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
