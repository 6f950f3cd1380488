import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from lfjax.data import (
    DatasetPathError,
    InvalidDatasetError,
    STD_FLOOR,
    CorruptDatasetError,
    DatasetMismatchError,
    MissingDatasetError,
    OutdatedDatasetError,
    SubstituteDatasetWarning,
    Transitions,
    compute_state_stats,
    concatenate,
    get_env_spec,
    load_dataset,
    minari_io,
    normalize_states,
    split,
)

from lfjax.datagen import maze2d

from ..conftest import SMALL_STEPS


@pytest.fixture(scope="module")
def loaded(small_umaze):
    return load_dataset("maze2d-umaze")


def test_loaded_shapes_dtypes_and_terminals(loaded):
    t = loaded.transitions
    assert t.observations.shape == t.next_observations.shape == (SMALL_STEPS, 4)
    assert t.actions.shape == (SMALL_STEPS, 2)
    assert t.rewards.shape == t.terminals.shape == (SMALL_STEPS,)
    for leaf in (t.observations, t.actions, t.rewards, t.next_observations, t.terminals):
        assert isinstance(leaf, jnp.ndarray) and leaf.dtype == jnp.float32
    assert float(t.terminals.sum()) == 0.0  # Timeouts are not terminals.
    np.testing.assert_array_equal(t.next_observations[:-1], t.observations[1:])
    assert loaded.minari_id == "lfjax/maze2d-umaze-v1"
    assert loaded.spec == get_env_spec("maze2d-umaze")
    assert loaded.metadata["num_steps"] == SMALL_STEPS


def test_reference_scores_come_from_the_dataset(loaded, small_umaze):
    metadata = minari_io.read_metadata(small_umaze)
    assert loaded.ref_min_score == metadata["ref_min_score"]
    assert loaded.ref_max_score == metadata["ref_max_score"]
    assert loaded.normalized_score(loaded.ref_max_score) == pytest.approx(100.0)


def test_state_stats(loaded):
    obs = np.asarray(loaded.transitions.observations, np.float64)
    np.testing.assert_allclose(loaded.state_stats.mean, obs.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loaded.state_stats.std, obs.std(0, ddof=1), rtol=1e-4)
    stats = compute_state_stats(jnp.array([[1.0, 5.0], [3.0, 5.0]]))
    np.testing.assert_allclose(stats.std, [np.sqrt(2.0), STD_FLOOR])  # Constant dim floored.
    normalized = normalize_states(jnp.array([[3.0, 5.0]]), stats)
    np.testing.assert_allclose(normalized, [[np.sqrt(2.0) / 2, 0.0]], rtol=1e-6)


def test_transitions_take_split_concatenate(loaded):
    t = loaded.transitions
    batch = t.take(jnp.array([0, 5, 5]))
    assert batch.observations.shape == (3, 4)
    np.testing.assert_array_equal(batch.actions[1], t.actions[5])
    train, val = split(t, 0.1, seed=0)
    assert (len(train), len(val)) == (SMALL_STEPS - 300, 300)
    assert len(concatenate([train, val])) == SMALL_STEPS
    with pytest.raises(AssertionError):
        Transitions(t.observations, t.actions, t.rewards[:-1], t.next_observations,
                    t.terminals).check()


def test_missing_maze_dataset_names_the_command(empty_minari_root):
    with pytest.raises(MissingDatasetError) as info:
        load_dataset("maze2d-large")
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "python -m experiments.make_dataset --env=maze2d-large" in message
    assert str(empty_minari_root) in message


def _as_old_recipe(dataset_dir):
    """Rewrites a copied dataset's metadata as the v0 recipe (recipe_version 1) wrote it."""
    path = dataset_dir / "data" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["lfjax"]["recipe_version"] = 1
    path.write_text(json.dumps(metadata))


def test_outdated_maze_dataset_is_never_loaded(small_umaze, minari_root, empty_minari_root):
    """A v0 dataset (noise before the controller's clip) beside a missing v1: not loaded in
    its place; the message names it as outdated and gives the command for the current one."""
    old = empty_minari_root / "lfjax" / "maze2d-umaze-v0"
    shutil.copytree(minari_root / small_umaze, old)
    _as_old_recipe(old)
    with pytest.raises(MissingDatasetError) as info:
        load_dataset("maze2d-umaze")
    message = str(info.value)
    assert "lfjax/maze2d-umaze-v0 is there but was made by an outdated recipe" in message
    assert "python -m experiments.make_dataset --env=maze2d-umaze" in message


def test_current_id_with_an_old_recipe_is_refused(small_umaze, minari_root, empty_minari_root):
    _copy_dataset(small_umaze, minari_root, empty_minari_root)
    _as_old_recipe(empty_minari_root / small_umaze)
    with pytest.raises(OutdatedDatasetError) as info:
        load_dataset("maze2d-umaze")
    assert "recipe version 1" in str(info.value)
    assert "python -m experiments.make_dataset --env=maze2d-umaze --overwrite" in str(info.value)


def test_loading_knows_the_generators_recipe_version():
    from lfjax.data import loading

    assert loading.MAZE2D_RECIPE_VERSION == maze2d.RECIPE_VERSION


@pytest.mark.parametrize(
    "name, expected",
    [
        ("halfcheetah-medium", "minari download mujoco/halfcheetah/medium-v0"),
        ("hopper-medium-expert", "minari download mujoco/hopper/medium-v0 mujoco/hopper/expert-v0"),
        ("walker2d-medium-replay", "no medium-replay"),
    ],
)
def test_missing_locomotion_dataset_says_how_to_get_it(empty_minari_root, name, expected):
    with pytest.raises(MissingDatasetError) as info:
        load_dataset(name)
    assert expected in str(info.value)
    assert str(empty_minari_root) in str(info.value)


def _copy_dataset(small_umaze, minari_root, destination):
    shutil.copytree(minari_root / small_umaze, destination / small_umaze)


def test_garbled_data_file_is_reported(small_umaze, minari_root, empty_minari_root):
    _copy_dataset(small_umaze, minari_root, empty_minari_root)
    data_file = empty_minari_root / small_umaze / "data" / "main_data.hdf5"
    content = data_file.read_bytes()
    data_file.write_bytes(content[: len(content) // 2])  # Truncated, as by a full disk.
    with pytest.raises(CorruptDatasetError, match="cannot be read"):
        load_dataset("maze2d-umaze")


def test_garbled_metadata_is_reported(small_umaze, minari_root, empty_minari_root):
    _copy_dataset(small_umaze, minari_root, empty_minari_root)
    (empty_minari_root / small_umaze / "data" / "metadata.json").write_text("{not json")
    with pytest.raises(CorruptDatasetError):
        load_dataset("maze2d-umaze")


def test_half_written_dataset_is_reported(small_umaze, minari_root, empty_minari_root):
    _copy_dataset(small_umaze, minari_root, empty_minari_root)
    path = empty_minari_root / small_umaze / "data" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["lfjax"]["complete"] = False
    path.write_text(json.dumps(metadata))
    with pytest.raises(CorruptDatasetError, match="--overwrite"):
        load_dataset("maze2d-umaze")


def test_dataset_of_another_maze_is_a_mismatch(small_umaze):
    with pytest.raises(DatasetMismatchError, match="maze2d-umaze"):
        load_dataset("maze2d-medium", minari_id=small_umaze)


def _write_pointmaze_like(minari_id, stream):
    """A tiny stand-in for Minari's D4RL/pointmaze datasets: dict observations with a goal."""
    import gymnasium
    import minari
    from minari.data_collector import EpisodeBuffer

    n = stream.actions.shape[0]
    box = lambda d: gymnasium.spaces.Box(-np.inf, np.inf, (d,), np.float64)
    observation_space = gymnasium.spaces.Dict(
        {"observation": box(4), "achieved_goal": box(2), "desired_goal": box(2)}
    )
    observations = {
        "observation": stream.observations,
        "achieved_goal": stream.observations[:, :2],
        "desired_goal": np.tile([9.0, 9.0], (n + 1, 1)),
    }
    minari.create_dataset_from_buffers(
        minari_id,
        [EpisodeBuffer(observations=observations, actions=stream.actions,
                       rewards=np.full(n, 7.0), terminations=np.zeros(n, bool),
                       truncations=np.eye(n, dtype=bool)[-1])],
        observation_space=observation_space,
        action_space=gymnasium.spaces.Box(-1, 1, (2,), np.float32),
        ref_min_score=-5.0, ref_max_score=5.0, author="test", author_email="t",
        algorithm_name="test", code_permalink="test", description="test",
    )


@pytest.mark.filterwarnings("ignore:.*(eval_env|env_spec).*:UserWarning")
def test_minari_pointmaze_is_loaded_when_ours_is_missing(empty_minari_root):
    stream = maze2d.collect_stream("umaze", 400, seed=2)
    _write_pointmaze_like("D4RL/pointmaze/umaze-v2", stream)
    with pytest.warns(SubstituteDatasetWarning, match="D4RL/pointmaze/umaze-v2"):
        data = load_dataset("maze2d-umaze")
    assert data.minari_id == "D4RL/pointmaze/umaze-v2"
    # Only the "observation" entry, and the reward of our evaluation env.
    np.testing.assert_allclose(data.transitions.observations, stream.observations[:-1])
    np.testing.assert_array_equal(data.transitions.rewards, stream.rewards)
    spec = get_env_spec("maze2d-umaze")
    assert (data.ref_min_score, data.ref_max_score) == (spec.ref_min_score, spec.ref_max_score)


def test_dict_observations_flatten_in_sorted_key_order():
    import gymnasium

    space = gymnasium.spaces.Dict(
        {"b": gymnasium.spaces.Box(0, 1, (1,)), "a": gymnasium.spaces.Box(0, 1, (2, 1))}
    )
    observations = {"b": np.full((3, 1), 2.0), "a": np.ones((3, 2, 1))}
    flat = minari_io.flatten_observations(observations, space)
    np.testing.assert_array_equal(flat, np.tile([1.0, 1.0, 2.0], (3, 1)))
    assert flat[0].tolist() == gymnasium.spaces.flatten(
        space, {k: v[0] for k, v in observations.items()}
    ).tolist()


def test_empty_data_file_is_reported(small_umaze, minari_root, empty_minari_root):
    _copy_dataset(small_umaze, minari_root, empty_minari_root)
    (empty_minari_root / small_umaze / "data" / "main_data.hdf5").write_bytes(b"")
    with pytest.raises(CorruptDatasetError, match="cannot be read"):
        load_dataset("maze2d-umaze")


def test_empty_minari_path_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", " ")
    with pytest.raises(DatasetPathError, match="set but empty; unset it"):
        load_dataset("maze2d-umaze")


def _edit_episodes(minari_id, root, edit):
    """edit(h5py file) on Minari's data file of minari_id under root."""
    import h5py

    with h5py.File(root / minari_id / "data" / "main_data.hdf5", "r+") as f:
        edit(f)


def _nan(path, index):
    def edit(f):
        f[path][index] = np.nan
    return edit


def _set(path, index, value):
    def edit(f):
        f[path][index] = value
    return edit


@pytest.mark.parametrize(
    "edits, expected",
    [
        ([_nan("episode_2/observations", (17, 1))],
         "1 step(s) have non-finite values in observations, the first at episode 2, step 17"),
        # An episode's final observation is only the next observation of its last step.
        ([_nan("episode_0/observations", (300, 0))],
         "1 step(s) have non-finite values in next_observations, the first at episode 0, step 299"),
        ([_set("episode_4/actions", (5, 0), np.inf), _set("episode_7/actions", (0, 1), np.nan)],
         "2 step(s) have non-finite values in actions, the first at episode 4, step 5"),
        ([_set("episode_1/rewards", 250, -np.inf)],
         "1 step(s) have non-finite values in rewards, the first at episode 1, step 250"),
        ([_set("episode_3/actions", (9, 1), -1.5), _set("episode_9/actions", (1, 0), 1.00001)],
         "2 step(s) have values outside the action space [-1, 1] (by more than 1e-06) in actions, "
         "the first at episode 3, step 9"),
    ],
)
def test_bad_values_are_refused_at_load_naming_the_first(small_umaze, minari_root, empty_minari_root,
                                                          edits, expected):
    _copy_dataset(small_umaze, minari_root, empty_minari_root)
    for edit in edits:
        _edit_episodes(small_umaze, empty_minari_root, edit)
    with pytest.raises(InvalidDatasetError) as info:
        load_dataset("maze2d-umaze")
    message = str(info.value)
    assert message.startswith(f"{small_umaze}: ") and expected in message, message
    assert "\n" not in message and "experiments.make_dataset --env=maze2d-umaze --overwrite" in message


def test_an_action_at_the_bound_up_to_rounding_is_accepted(small_umaze, minari_root, empty_minari_root):
    _copy_dataset(small_umaze, minari_root, empty_minari_root)
    _edit_episodes(small_umaze, empty_minari_root, _set("episode_3/actions", (9, 1), np.float32(-1.0000005)))
    assert load_dataset("maze2d-umaze").transitions.actions[3 * 300 + 9, 1] == np.float32(-1.0000005)


def test_an_empty_episode_is_refused_at_load(small_umaze, minari_root, empty_minari_root):
    _copy_dataset(small_umaze, minari_root, empty_minari_root)

    def empty_episode_5(f):
        episode = f["episode_5"]
        for name in ("actions", "rewards", "terminations", "truncations", "observations", "infos/goal"):
            keep = 1 if name in ("observations", "infos/goal") else 0  # T + 1 observations, T steps
            data = episode[name][:keep]
            del episode[name]
            episode.create_dataset(name, data=data)

    _edit_episodes(small_umaze, empty_minari_root, empty_episode_5)
    with pytest.raises(InvalidDatasetError, match=r"1 episode\(s\) have no steps \(the first is episode 5 of 10\)"):
        load_dataset("maze2d-umaze")


@pytest.mark.filterwarnings("ignore:.*(eval_env|env_spec).*:UserWarning")
def test_a_minari_dataset_with_bad_actions_is_refused_at_load(empty_minari_root):
    stream = maze2d.collect_stream("umaze", 50, seed=2)
    stream.actions[7, 1] = 3.0
    _write_pointmaze_like("D4RL/pointmaze/umaze-v2", stream)
    with pytest.raises(InvalidDatasetError) as info, pytest.warns(SubstituteDatasetWarning):
        load_dataset("maze2d-umaze")
    message = str(info.value)
    assert message.startswith("D4RL/pointmaze/umaze-v2: 1 step(s) have values outside the action space")
    assert "episode 0, step 7" in message and "minari download D4RL/pointmaze/umaze-v2" in message
