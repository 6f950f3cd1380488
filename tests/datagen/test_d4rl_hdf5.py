"""Converting D4RL's hdf5 files (lfjax.datagen.d4rl_hdf5) on small synthetic files in D4RL's
*-v2.hdf5 layout: episode boundaries, terminations vs truncations, the loaded transitions
against D4RL's qlearning_dataset (expected arrays written out by hand), provenance, and every
validation error."""

import hashlib
import json

import h5py
import numpy as np
import pytest

from lfjax.data import (
    CorruptDatasetError,
    DatasetError,
    DatasetExistsError,
    InvalidDatasetError,
    MissingDatasetError,
    UnknownEnvError,
    get_env_spec,
    load_dataset,
    minari_io,
)
from lfjax.datagen import D4RLFileError, convert_d4rl_hdf5
from lfjax.datagen.d4rl_hdf5 import split_episodes

N, S, A = 10, 11, 3  # hopper: 11-dim observations, 3-dim actions
ID = "lfjax/hopper-medium-replay-v0"

# One stream of 10 steps (rows 0-9), episodes one after another:
#   rows 0-2 end in a terminal, rows 3-5 in a timeout, row 6 is a one-step terminal episode,
#   row 7 is both terminal and timeout, rows 8-9 are a trailing piece (neither flag).
TERMINALS = np.array([0, 0, 1, 0, 0, 0, 1, 1, 0, 0], bool)
TIMEOUTS = np.array([0, 0, 0, 0, 0, 1, 0, 1, 0, 0], bool)


def obs(row):
    """Observation of row `row` (11 values, recognizable by row)."""
    return row + np.arange(S, dtype=np.float32) / 100


def final(row):
    """The true next observation after the last step `row` of an episode, which is not any
    row's observation (D4RL stores it only in next_observations)."""
    return 100 + obs(row)


OBSERVATIONS = np.stack([obs(i) for i in range(N)]).astype(np.float32)
NEXT_OBSERVATIONS = np.stack(
    [final(i) if i in (2, 5, 6, 7, 9) else obs(i + 1) for i in range(N)]
).astype(np.float32)
ACTIONS = np.stack([[i / 10, -i / 10, 0.5] for i in range(N)]).astype(np.float32)
REWARDS = (10.0 * np.arange(N) + 0.25).astype(np.float32)


def write_d4rl(path, *, with_next=True, drop=(), **replace):
    """A D4RL-style hdf5 file: the stream above, with next_observations or not, keys dropped
    or replaced, plus infos/ and metadata/ groups as D4RL's files have (the converter
    ignores them)."""
    arrays = {
        "observations": OBSERVATIONS, "actions": ACTIONS, "rewards": REWARDS,
        "terminals": TERMINALS, "timeouts": TIMEOUTS,
    }
    if with_next:
        arrays["next_observations"] = NEXT_OBSERVATIONS
    arrays.update(replace)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if key not in drop:
                f.create_dataset(key, data=value)
        f.create_dataset("infos/qpos", data=np.zeros((N, 6), np.float32))
        f.create_dataset("infos/action_log_probs", data=np.zeros(N, np.float32))
        f["metadata/algorithm"] = "SAC"
    return path


def rows(indices):
    return np.stack([obs(i) for i in indices])


def test_with_next_observations_every_step_is_kept(empty_minari_root, tmp_path):
    convert_d4rl_hdf5("hopper-medium-replay", write_d4rl(tmp_path / "d.hdf5"))
    t = load_dataset("hopper-medium-replay").transitions
    np.testing.assert_array_equal(t.observations, rows(range(10)))
    np.testing.assert_array_equal(t.next_observations, np.stack([
        obs(1), obs(2), final(2), obs(4), obs(5), final(5), final(6), final(7), obs(9), final(9),
    ]))
    np.testing.assert_array_equal(t.terminals, [0, 0, 1, 0, 0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(t.rewards, REWARDS)
    np.testing.assert_array_equal(t.actions, ACTIONS)


def test_without_next_observations_equals_d4rl_qlearning_dataset(empty_minari_root, tmp_path):
    convert_d4rl_hdf5("hopper-medium-replay", write_d4rl(tmp_path / "d.hdf5", with_next=False))
    t = load_dataset("hopper-medium-replay").transitions
    # d4rl.qlearning_dataset(env, dataset) on this stream: i = 0..8 (the last row never);
    # timeouts (rows 5 and 7, row 7 is also terminal) are skipped; a terminal's next
    # observation is the next row; terminals kept.
    kept = [0, 1, 2, 3, 4, 6, 8]
    np.testing.assert_array_equal(t.observations, rows(kept))
    np.testing.assert_array_equal(t.next_observations, rows([1, 2, 3, 4, 5, 7, 9]))
    np.testing.assert_array_equal(t.actions, ACTIONS[kept])
    np.testing.assert_array_equal(t.rewards, REWARDS[kept])
    np.testing.assert_array_equal(t.terminals, [0, 0, 1, 0, 0, 1, 0])


def _stored_episodes():
    import minari

    dataset = minari.MinariDataset(minari_io.dataset_dir(ID) / "data")
    return list(dataset.iterate_episodes())


@pytest.mark.parametrize(
    "with_next, lengths, terminations, truncations",
    [
        # rows 0-2 | 3-5 | 6 | 7 | 8-9
        (True, [3, 3, 1, 1, 2], [1, 0, 1, 1, 0], [0, 1, 0, 1, 1]),
        # the timeout rows 5 and 7 and the last row 9 have no next observation: dropped
        # (episode 7 vanishes); the episodes they ended become truncations
        (False, [3, 2, 1, 1], [1, 0, 1, 0], [0, 1, 0, 1]),
    ],
)
def test_episode_boundaries_terminations_and_truncations(
    empty_minari_root, tmp_path, with_next, lengths, terminations, truncations
):
    convert_d4rl_hdf5("hopper-medium-replay", write_d4rl(tmp_path / "d.hdf5", with_next=with_next))
    episodes = _stored_episodes()
    assert [len(e.rewards) for e in episodes] == lengths
    assert [len(e.observations) for e in episodes] == [n + 1 for n in lengths]
    assert [int(e.terminations[-1]) for e in episodes] == terminations
    assert [int(e.truncations[-1]) for e in episodes] == truncations
    for e in episodes:  # only the last step of an episode may end it
        assert not e.terminations[:-1].any() and not e.truncations[:-1].any()
    if with_next:  # the trailing piece's final observation is next_observations[9]
        np.testing.assert_array_equal(episodes[-1].observations[-1], final(9))
    else:  # the dropped step's own observation is its episode's final one (qlearning_dataset)
        np.testing.assert_array_equal(episodes[1].observations[-1], obs(5))
        np.testing.assert_array_equal(episodes[-1].observations, rows([8, 9]))


def test_an_unflagged_boundary_is_cut_as_a_truncation():
    """next_observations[t] != observations[t+1] with no flag at t: the stream changed episode
    there; every step keeps its own next observation."""
    next_obs = np.stack([obs(1), final(1), obs(3), final(3)]).astype(np.float64)
    episodes, counts = split_episodes({
        "observations": rows(range(4)).astype(np.float64), "next_observations": next_obs,
        "actions": ACTIONS[:4], "rewards": REWARDS[:4].astype(np.float64),
        "terminals": np.zeros(4, bool), "timeouts": np.zeros(4, bool),
    })
    assert [len(e.rewards) for e in episodes] == [2, 2]
    assert [(e.terminations[-1], e.truncations[-1]) for e in episodes] == [(False, True)] * 2
    np.testing.assert_array_equal(episodes[0].observations, np.stack([obs(0), obs(1), final(1)]))
    assert counts["num_unflagged_boundaries"] == 1 and counts["num_trailing_steps"] == 2


def test_provenance_is_in_the_metadata(empty_minari_root, tmp_path):
    path = write_d4rl(tmp_path / "hopper_medium_replay-v2.hdf5")
    convert_d4rl_hdf5("hopper-medium-replay", path)
    loaded = load_dataset("hopper-medium-replay")
    info = loaded.metadata
    assert info["source"] == "converted from D4RL hdf5"
    assert info["source_file"] == "hopper_medium_replay-v2.hdf5"
    assert info["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["source_bytes"] == path.stat().st_size
    assert info["final_observation"] == "next_observations[last step]"
    assert (info["source_steps"], info["num_steps"], info["num_episodes"]) == (10, 10, 5)
    assert (info["num_terminations"], info["num_truncations"]) == (3, 3)
    assert info["num_dropped_steps"] == 0 and info["num_trailing_steps"] == 2
    assert info["env_name"] == "hopper-medium-replay"
    # D4RL's reference returns for hopper (d4rl/infos.py), as the normalized score needs.
    assert (loaded.ref_min_score, loaded.ref_max_score) == (-20.272305, 3234.3)
    assert loaded.minari_id == ID
    # experiments.run records this dict in results.json (dataset.generation) and flow.json.
    from lfjax.stages.dataset import dataset_identity

    assert dataset_identity(loaded)["generation"]["source_sha256"] == info["source_sha256"]


def test_overwrite(empty_minari_root, tmp_path):
    first = write_d4rl(tmp_path / "a.hdf5")
    convert_d4rl_hdf5("hopper-medium-replay", first)
    before = minari_io.read_metadata(ID)["lfjax"]
    with pytest.raises(DatasetExistsError, match="--overwrite"):
        convert_d4rl_hdf5("hopper-medium-replay", first)
    # The same file again is the same dataset (same identity, so a saved flow is reused).
    convert_d4rl_hdf5("hopper-medium-replay", first, overwrite=True)
    assert minari_io.read_metadata(ID)["lfjax"] == before
    # A bad file never replaces a good dataset.
    bad = write_d4rl(tmp_path / "bad.hdf5", drop=("timeouts",))
    with pytest.raises(D4RLFileError):
        convert_d4rl_hdf5("hopper-medium-replay", bad, overwrite=True)
    assert minari_io.read_metadata(ID)["lfjax"] == before
    other = write_d4rl(tmp_path / "b.hdf5", with_next=False)
    convert_d4rl_hdf5("hopper-medium-replay", other, overwrite=True)
    assert load_dataset("hopper-medium-replay").metadata["source_file"] == "b.hdf5"
    assert len(load_dataset("hopper-medium-replay").transitions) == 7


BAD_ACTIONS = ACTIONS.copy()
BAD_ACTIONS[3, 1] = 1.5
NAN_REWARDS = REWARDS.copy()
NAN_REWARDS[4] = np.nan
INF_OBS = OBSERVATIONS.copy()
INF_OBS[6, 2] = -np.inf
NAN_NEXT = NEXT_OBSERVATIONS.copy()
NAN_NEXT[1, 0] = np.nan
BAD_TERMINALS = TERMINALS.astype(np.int8)
BAD_TERMINALS[8] = 2


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"drop": ("timeouts",)}, "no top-level dataset 'timeouts'"),
        ({"drop": ("observations", "rewards")}, "no top-level dataset 'observations', 'rewards'"),
        ({"actions": ACTIONS[:-1]}, "'actions' has 9 rows but 'rewards' has 10"),
        ({"terminals": TERMINALS[:-2]}, "'terminals' has 8 rows but 'rewards' has 10"),
        ({"observations": np.zeros((N, 17), np.float32)},
         "'observations' has shape (10, 17) but hopper-medium-replay needs 11 columns"),
        ({"next_observations": np.zeros((N, 17), np.float32)},
         "'next_observations' has shape (10, 17) but hopper-medium-replay needs 11 columns"),
        ({"actions": np.zeros((N, 6), np.float32)},
         "'actions' has shape (10, 6) but hopper-medium-replay needs 3 columns"),
        ({"rewards": REWARDS[:, None]}, "'rewards' has shape (10, 1)"),
        ({"rewards": NAN_REWARDS},
         "'rewards' has non-finite values in 1 row(s) (first at row 4)"),
        ({"observations": INF_OBS},
         "'observations' has non-finite values in 1 row(s) (first at row 6)"),
        ({"next_observations": NAN_NEXT}, "'next_observations' has non-finite values"),
        ({"actions": BAD_ACTIONS}, "'actions' leave [-1, 1] (|a| = 1.5 at row 3)"),
        ({"terminals": BAD_TERMINALS},
         "'terminals' holds values other than 0 / 1 (first at row 8)"),
        ({"rewards": np.zeros(0, np.float32), "observations": np.zeros((0, S), np.float32),
          "next_observations": np.zeros((0, S), np.float32),
          "actions": np.zeros((0, A), np.float32), "terminals": np.zeros(0, bool),
          "timeouts": np.zeros(0, bool)}, "holds no steps"),
    ],
)
def test_validation_errors_name_the_file_the_key_and_the_fix(
    empty_minari_root, tmp_path, change, expected
):
    path = write_d4rl(tmp_path / "d.hdf5", **change)
    with pytest.raises(D4RLFileError) as info:
        convert_d4rl_hdf5("hopper-medium-replay", path)
    message = str(info.value)
    assert expected in message
    assert str(path) in message and "hopper_medium_replay-v2.hdf5" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, DatasetError)
    assert not minari_io.dataset_dir(ID).exists()


def test_actions_within_the_tolerance_are_accepted_unchanged(empty_minari_root, tmp_path):
    actions = ACTIONS.copy()
    actions[0, 0] = np.float32(1.0000005)  # float32 rounding; the loader's tolerance is 1e-6
    convert_d4rl_hdf5("hopper-medium-replay", write_d4rl(tmp_path / "d.hdf5", actions=actions))
    assert load_dataset("hopper-medium-replay").transitions.actions[0, 0] == np.float32(1.0000005)


def test_actions_beyond_the_loaders_tolerance_are_refused_at_conversion(empty_minari_root, tmp_path):
    # Accepted by the converter's old tolerance (1e-4), then refused by every load.
    actions = ACTIONS.copy()
    actions[4, 1] = np.float32(1.00001)
    with pytest.raises(D4RLFileError, match=r"'actions' leave \[-1, 1\] \(\|a\| = 1.00001 at row 4\)"):
        convert_d4rl_hdf5("hopper-medium-replay", write_d4rl(tmp_path / "d.hdf5", actions=actions))
    assert not minari_io.dataset_dir(ID).exists()


def test_a_converted_dataset_damaged_on_disk_is_refused_at_load(empty_minari_root, tmp_path):
    import h5py

    convert_d4rl_hdf5("hopper-medium-replay", write_d4rl(tmp_path / "d.hdf5"))
    with h5py.File(minari_io.dataset_dir(ID) / "data" / "main_data.hdf5", "r+") as f:
        f["episode_1/rewards"][2] = np.nan  # rows 3-5: row 5 is the episode's step 2
    with pytest.raises(InvalidDatasetError) as info:
        load_dataset("hopper-medium-replay")
    message = str(info.value)
    assert "1 step(s) have non-finite values in rewards, the first at episode 1, step 2" in message
    assert "convert an intact copy" in message and "d.hdf5" in message


def test_missing_or_unreadable_file(empty_minari_root, tmp_path):
    with pytest.raises(D4RLFileError, match="no such file.*hopper_medium_replay-v2.hdf5"):
        convert_d4rl_hdf5("hopper-medium-replay", tmp_path / "absent.hdf5")
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(D4RLFileError, match="text.hdf5 cannot be read as hdf5"):
        convert_d4rl_hdf5("hopper-medium-replay", tmp_path / "text.hdf5")


@pytest.mark.parametrize(
    "name, error, expected",
    [
        ("hopper-expert", UnknownEnvError,
         "accepts halfcheetah-medium-replay, hopper-medium-replay, walker2d-medium-replay"),
        ("maze2d-umaze", ValueError, "python -m experiments.make_dataset --env=maze2d-umaze"),
        ("walker2d-medium", ValueError, "minari download mujoco/walker2d/medium-v0"),
    ],
)
def test_only_medium_replay_names_are_converted(empty_minari_root, tmp_path, name, error, expected):
    with pytest.raises(error) as info:
        convert_d4rl_hdf5(name, write_d4rl(tmp_path / "d.hdf5"))
    assert expected in str(info.value)


def test_missing_dataset_message_names_the_converter(empty_minari_root):
    with pytest.raises(MissingDatasetError) as info:
        load_dataset("hopper-medium-replay")
    assert (
        "python -m experiments.convert_d4rl --env=hopper-medium-replay "
        "--hdf5=<path to D4RL's hopper_medium_replay-v2.hdf5>"
    ) in str(info.value)
    assert get_env_spec("walker2d-medium-replay").d4rl_hdf5_name == "walker2d_medium_replay-v2.hdf5"
    assert get_env_spec("halfcheetah-medium").convert_command is None


def test_half_written_conversion_says_to_convert_again(empty_minari_root, tmp_path):
    convert_d4rl_hdf5("hopper-medium-replay", write_d4rl(tmp_path / "d.hdf5"))
    path = minari_io.dataset_dir(ID) / "data" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["lfjax"]["complete"] = False
    path.write_text(json.dumps(metadata))
    with pytest.raises(CorruptDatasetError) as info:
        load_dataset("hopper-medium-replay")
    assert "convert it again: python -m experiments.convert_d4rl --env=hopper-medium-replay" in (
        str(info.value)
    )


def test_a_failure_before_the_rename_leaves_the_old_conversion_or_none(empty_minari_root, tmp_path, monkeypatch):
    def fail(staged, target, overwrite):
        raise OSError("disk full")

    staged = lambda: [p for p in empty_minari_root.rglob(".*") if ".tmp-" in p.name]
    with monkeypatch.context() as patch:
        patch.setattr(minari_io, "_commit", fail)
        with pytest.raises(OSError, match="disk full"):
            convert_d4rl_hdf5("hopper-medium-replay", write_d4rl(tmp_path / "a.hdf5"))
    assert not minari_io.dataset_dir(ID).exists() and staged() == []

    convert_d4rl_hdf5("hopper-medium-replay", write_d4rl(tmp_path / "a.hdf5"))
    with monkeypatch.context() as patch:
        patch.setattr(minari_io, "_commit", fail)
        with pytest.raises(OSError, match="disk full"):
            convert_d4rl_hdf5("hopper-medium-replay", write_d4rl(tmp_path / "b.hdf5", with_next=False),
                              overwrite=True)
    assert minari_io.read_metadata(ID)["lfjax"]["source_file"] == "a.hdf5" and staged() == []
    assert load_dataset("hopper-medium-replay").transitions.rewards.shape == (N,)  # whole
    convert_d4rl_hdf5("hopper-medium-replay", write_d4rl(tmp_path / "b.hdf5", with_next=False), overwrite=True)
    assert minari_io.read_metadata(ID)["lfjax"]["source_file"] == "b.hdf5"
