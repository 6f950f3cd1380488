import os
import subprocess
import sys

import numpy as np
import pytest

from lfjax.data import DatasetExistsError, get_env_spec, load_dataset, minari_io
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


class Failed(Exception):
    pass


def fail_before_the_rename(monkeypatch):
    """Every dataset write fails after the whole dataset is written, before it is moved into
    place."""

    def fail(staged, target, overwrite):
        assert (staged / "data" / "metadata.json").is_file()  # written whole
        raise Failed

    monkeypatch.setattr(minari_io, "_commit", fail)


def nothing_staged(root):
    return not [p for p in root.rglob(".*") if ".tmp-" in p.name]


@pytest.mark.parametrize("name, kwargs", [
    ("maze2d-umaze", dict(num_steps=400, ref_episodes=1)),
    ("hopper-medium", dict(num_steps=300, ref_episodes=1, train_steps=300)),
])
@pytest.mark.filterwarnings("ignore::lfjax.data.SubstituteDatasetWarning")  # the stand-in
def test_a_failure_before_the_rename_leaves_the_old_dataset_or_none(empty_minari_root, monkeypatch, name, kwargs):
    spec = get_env_spec(name)
    minari_id = spec.minari_ids[0] if spec.is_maze else spec.stand_in_id
    with monkeypatch.context() as patch:
        fail_before_the_rename(patch)
        with pytest.raises(Failed):
            generate_dataset(name, seed=0, progress=False, **kwargs)
    assert not minari_io.dataset_dir(minari_id).exists() and nothing_staged(empty_minari_root)

    generate_dataset(name, seed=0, progress=False, **kwargs)
    before = minari_io.read_episodes(minari_id)[0]["actions"]
    with monkeypatch.context() as patch:
        fail_before_the_rename(patch)
        with pytest.raises(Failed):
            generate_dataset(name, seed=1, progress=False, overwrite=True, **kwargs)
    np.testing.assert_array_equal(minari_io.read_episodes(minari_id)[0]["actions"], before)
    assert nothing_staged(empty_minari_root)
    load_dataset(name)  # the old one, whole


# python -c KILL_BEFORE_RENAME <flags...>: generate_dataset killed with SIGKILL (no cleanup of
# any kind) once Minari has written the whole dataset, before lfjax moves it into place.
KILL_BEFORE_RENAME = """
import os, signal, sys
import minari
from lfjax.datagen import generate_dataset

create = minari.create_dataset_from_buffers

def create_then_die(*args, **kwargs):
    create(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

minari.create_dataset_from_buffers = create_then_die
generate_dataset("maze2d-umaze", num_steps=400, ref_episodes=1, seed=int(sys.argv[1]),
                 overwrite=sys.argv[2] == "overwrite", progress=False)
"""


def test_a_kill_while_a_dataset_is_written_leaves_the_old_one_or_none(empty_minari_root):
    env = {**os.environ, "MINARI_DATASETS_PATH": str(empty_minari_root), "JAX_PLATFORMS": "cpu"}
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    kill = lambda seed, mode: subprocess.run([sys.executable, "-c", KILL_BEFORE_RENAME, str(seed), mode],
                                             env=env, cwd=repo, capture_output=True, text=True)
    minari_id = "lfjax/maze2d-umaze-v1"
    killed = kill(0, "new")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not minari_io.dataset_exists(minari_id)  # no half dataset under its name
    generate_dataset("maze2d-umaze", num_steps=400, ref_episodes=1, seed=0, progress=False)
    before = minari_io.read_episodes(minari_id)[0]["actions"]
    killed = kill(1, "overwrite")
    assert killed.returncode == -9, killed.stderr[-2000:]
    np.testing.assert_array_equal(minari_io.read_episodes(minari_id)[0]["actions"], before)
    assert minari_io.read_metadata(minari_id)["lfjax"]["seed"] == 0
    # The killed writers' staging directories are hidden from Minari and removed by the next write.
    assert not nothing_staged(empty_minari_root)
    generate_dataset("maze2d-umaze", num_steps=400, ref_episodes=1, seed=2, progress=False, overwrite=True)
    assert nothing_staged(empty_minari_root) and minari_io.read_metadata(minari_id)["lfjax"]["seed"] == 2
