"""Generates a dataset as a Minari dataset, where Minari keeps datasets ($MINARI_DATASETS_PATH,
default ~/.minari/datasets):

    python -m experiments.make_dataset --env=maze2d-umaze [--num_steps=N] [--seed=S]
    python -m experiments.make_dataset --env=hopper-medium [--num_steps=N] [--seed=S]

maze2d-<maze>: D4RL's recipe on gymnasium-robotics PointMaze, as lfjax/maze2d-<maze>-v1.
Locomotion names (halfcheetah / hopper / walker2d - medium / medium-replay / medium-expert):
a small generated stand-in, NOT D4RL data, as lfjax-generated/<name>-v0: a random and a
briefly trained linear policy in the real gymnasium v5 MuJoCo env (lfjax/datagen/locomotion.py).
lfjax.data.load_dataset(<name>) finds either; a stand-in only when the real dataset is missing.
"""

from __future__ import annotations

import sys

from absl import app, flags

from lfjax.data import DatasetError, DatasetExistsError, datasets_root, env_names, get_env_spec
from lfjax.datagen import generate_dataset

_ENV = flags.DEFINE_enum("env", None, list(env_names()), "Which dataset to generate.")
_NUM_STEPS = flags.DEFINE_integer(
    "num_steps", None,
    "Dataset size in env steps (default: maze2d D4RL's size, umaze 1M, medium 2M, large 4M; "
    "locomotion stand-ins 100k).",
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the data, the policy training and the references.")
_REF_EPISODES = flags.DEFINE_integer(
    "ref_episodes", 100,
    "Episodes per reference return (maze2d: random policy, noise-free controller; "
    "locomotion: random policy, trained policy).",
)
_TRAIN_STEPS = flags.DEFINE_integer(
    "train_steps", None,
    "Locomotion only: env steps of the behaviour policy's training (default 40k).",
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
            train_steps=_TRAIN_STEPS.value,
        )
    except DatasetExistsError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    except (DatasetError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    from lfjax.data import minari_io

    settings = minari_io.read_metadata(minari_id)["lfjax"]
    where = f"wrote {minari_id} to {datasets_root() / minari_id}"
    refs = (
        f"reference returns over {settings['ref_episodes']} episodes: "
        f"random {settings['ref_random_return']:.2f}"
    )
    if get_env_spec(_ENV.value).is_maze:
        print(
            f"{where}: {settings['num_steps']} steps at {settings['steps_per_second']:.0f} "
            f"steps/s; {refs}, controller {settings['ref_controller_return']:.2f}"
        )
        return
    print(
        f"{where}: {settings['num_steps']} steps in {settings['num_episodes']} episodes "
        f"({settings['num_terminations']} terminated) at {settings['steps_per_second']:.0f} "
        f"steps/s, mean episode return {settings['episode_return_mean']:.1f}; {refs}, trained "
        f"policy {settings['ref_trained_return']:.2f}.\n"
        f"This is a {settings['not_d4rl']}. `python -m experiments.run --env={_ENV.value}` "
        f"uses it while the real dataset is missing."
    )


if __name__ == "__main__":
    app.run(main)
