"""Generates a maze2d dataset (D4RL's recipe on gymnasium-robotics PointMaze) as a Minari dataset.

    python -m experiments.make_dataset --env=maze2d-umaze [--num_steps=N] [--seed=S]

It lands where Minari keeps datasets ($MINARI_DATASETS_PATH, default ~/.minari/datasets) under
the id lfjax/maze2d-<maze>-v0; lfjax.data.load_dataset("maze2d-<maze>") then finds it.
"""

from __future__ import annotations

import sys

from absl import app, flags

from lfjax.data import (
    DatasetError,
    DatasetExistsError,
    datasets_root,
    env_names,
    generate_dataset,
    get_env_spec,
)

_MAZES = [name for name in env_names() if get_env_spec(name).is_maze]

_ENV = flags.DEFINE_enum("env", None, _MAZES, "Which maze2d dataset to generate.")
_NUM_STEPS = flags.DEFINE_integer(
    "num_steps", None, "Stream length (default: D4RL's size, umaze 1M, medium 2M, large 4M)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the stream and of the reference episodes.")
_REF_EPISODES = flags.DEFINE_integer(
    "ref_episodes", 100, "Episodes per reference return (random policy, noise-free controller)."
)
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace an existing dataset.")
flags.mark_flag_as_required("env")


def main(argv: list[str]) -> None:
    del argv
    try:
        minari_id = generate_dataset(
            _ENV.value,
            num_steps=_NUM_STEPS.value,
            seed=_SEED.value,
            ref_episodes=_REF_EPISODES.value,
            progress=True,
            overwrite=_OVERWRITE.value,
        )
    except DatasetExistsError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    from lfjax.data import minari_io

    settings = minari_io.read_metadata(minari_id)["lfjax"]
    print(
        f"wrote {minari_id} to {datasets_root() / minari_id}: {settings['num_steps']} steps at "
        f"{settings['steps_per_second']:.0f} steps/s; reference returns over "
        f"{settings['ref_episodes']} episodes: random {settings['ref_random_return']:.2f}, "
        f"controller {settings['ref_controller_return']:.2f}"
    )


if __name__ == "__main__":
    app.run(main)
