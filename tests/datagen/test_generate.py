import os
import subprocess
import sys

import numpy as np
import pytest

from lfjax.data import DatasetExistsError, minari_io
from lfjax.datagen import generate_dataset, maze2d
from lfjax.envs import maze2d as maze_env

from ..conftest import SMALL_REF_EPISODES, SMALL_STEPS


@pytest.fixture(scope="module")
def stored(small_umaze):
    return minari_io.read_episodes(small_umaze)


def test_stream_is_stored_whole_and_continuous(stored):
    arrays, _ = stored
    assert arrays["observations"].shape == (SMALL_STEPS, 4)
    assert arrays["actions"].shape == (SMALL_STEPS, 2)
    # One physical stream: every next observation is the following observation, also across
    # the cuts into 300-step episodes.
    np.testing.assert_array_equal(arrays["next_observations"][:-1], arrays["observations"][1:])
    cuts = np.flatnonzero(arrays["timeouts"])
    np.testing.assert_array_equal(cuts, np.arange(299, SMALL_STEPS, 300))
    assert not arrays["terminals"].any()


def test_rewards_are_relabeled_to_the_evaluation_goal(stored):
    arrays, _ = stored
    goal = maze_env.get_layout("umaze").goal
    distance = np.linalg.norm(arrays["next_observations"][:, :2] - goal, axis=1)
    np.testing.assert_array_equal(arrays["rewards"], (distance <= 0.5).astype(np.float32))
    assert set(np.unique(arrays["rewards"])) == {0.0, 1.0}


def test_actions_are_clipped_and_noisy(stored):
    arrays, _ = stored
    actions = arrays["actions"]
    assert actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 1.0)
    assert np.any(np.abs(actions) == 1.0)
    assert np.any((np.abs(actions) > 0.01) & (np.abs(actions) < 0.99))


def test_metadata_records_recipe_and_reference_returns(stored):
    _, metadata = stored
    settings = metadata["lfjax"]
    assert settings["complete"]
    assert settings["env_name"] == "maze2d-umaze"
    assert (settings["seed"], settings["num_steps"]) == (0, SMALL_STEPS)
    assert settings["recipe_version"] == maze2d.RECIPE_VERSION
    assert settings["action_noise_std"] == 0.5 and settings["goal_radius"] == 0.5
    assert metadata["num_episodes_average_score"] == SMALL_REF_EPISODES
    assert metadata["ref_max_score"] > metadata["ref_min_score"] >= 0  # expert > random
    assert "lfjax/maze2d-umaze-v0" in metadata["eval_env_spec"]


def test_existing_dataset_is_kept_unless_overwrite(empty_minari_root):
    first = generate_dataset("maze2d-umaze", num_steps=500, ref_episodes=1, progress=False)
    before = minari_io.read_episodes(first)[0]["actions"]
    with pytest.raises(DatasetExistsError, match="--overwrite"):
        generate_dataset("maze2d-umaze", num_steps=500, seed=1, ref_episodes=1, progress=False)
    generate_dataset(
        "maze2d-umaze", num_steps=500, seed=1, ref_episodes=1, progress=False, overwrite=True
    )
    after = minari_io.read_episodes(first)[0]["actions"]
    assert not np.array_equal(before, after)


def test_train_steps_is_for_locomotion_stand_ins_only(empty_minari_root):
    # Locomotion names generate stand-ins: tests/datagen/test_locomotion.py.
    with pytest.raises(ValueError, match="locomotion"):
        generate_dataset("maze2d-umaze", num_steps=10, train_steps=100, progress=False)


def test_command_line(empty_minari_root):
    env = {**os.environ, "MINARI_DATASETS_PATH": str(empty_minari_root)}
    command = [sys.executable, "-m", "experiments.make_dataset", "--env=maze2d-medium",
               "--num_steps=700", "--ref_episodes=1", "--seed=3"]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(command, env=env, cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "wrote lfjax/maze2d-medium-v1" in done.stdout
    assert (empty_minari_root / "lfjax" / "maze2d-medium-v1" / "data" / "metadata.json").is_file()
    again = subprocess.run(command, env=env, cwd=repo, capture_output=True, text=True)
    assert again.returncode == 1 and "--overwrite" in again.stderr


def test_minari_recovers_our_evaluation_env(small_umaze):
    import minari

    env = minari.load_dataset(small_umaze).recover_environment(eval_env=True)
    assert env.spec.id == "lfjax/maze2d-umaze-v0"
    assert env.spec.max_episode_steps == 300
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,)
    env.close()
