"""Reading and writing Minari datasets, with errors that say what to do.

Minari keeps dataset <id> under $MINARI_DATASETS_PATH/<id>/data (default ~/.minari/datasets);
lfjax never chooses another place.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import warnings
from typing import Any

import gymnasium
import numpy as np


class DatasetError(Exception):
    """Base class of lfjax's dataset errors."""


class MissingDatasetError(DatasetError, FileNotFoundError):
    """The dataset is not on this machine; the message says how to get it."""


class CorruptDatasetError(DatasetError):
    """The dataset's files exist but cannot be read, or were left half-written."""


class DatasetMismatchError(DatasetError, ValueError):
    """The dataset reads fine but is not the one asked for (other env, other shapes)."""


class DatasetPathError(DatasetError, ValueError):
    """MINARI_DATASETS_PATH does not name a usable directory."""


class DatasetExistsError(DatasetError, FileExistsError):
    """Generation refused to overwrite an existing dataset."""


class SubstituteDatasetWarning(UserWarning):
    """load_dataset loaded another dataset than the name's own, which is missing (Minari's
    pointmaze for maze2d, a generated stand-in for locomotion); the message says which.
    A warning rather than a log record, so that it reaches the user of any program: a CLI
    that quiets logging (absl) still shows it."""


def datasets_root() -> pathlib.Path:
    """Where Minari looks for datasets: $MINARI_DATASETS_PATH, else ~/.minari/datasets.

    Raises DatasetPathError when the variable is set but empty: Minari would then fail deep
    inside with "No such file or directory: ''".
    """
    root = os.environ.get("MINARI_DATASETS_PATH")
    if root is not None and not root.strip():
        raise DatasetPathError(
            "MINARI_DATASETS_PATH is set but empty; unset it (Minari then uses "
            "~/.minari/datasets) or set it to a directory"
        )
    if root is None:
        root = os.path.join(os.path.expanduser("~"), ".minari", "datasets")
    return pathlib.Path(root)


def dataset_dir(minari_id: str) -> pathlib.Path:
    """The directory Minari uses for minari_id (it may not exist)."""
    return datasets_root() / minari_id


def dataset_exists(minari_id: str) -> bool:
    """True when minari_id has a data directory with metadata (complete or not)."""
    return (dataset_dir(minari_id) / "data" / "metadata.json").is_file()


def delete_dataset(minari_id: str) -> None:
    """Removes minari_id's directory if present."""
    path = dataset_dir(minari_id)
    if path.exists():
        shutil.rmtree(path)


def read_metadata(minari_id: str) -> dict[str, Any]:
    """The raw metadata.json of minari_id (CorruptDatasetError when unreadable)."""
    path = dataset_dir(minari_id) / "data" / "metadata.json"
    try:
        with open(path) as f:
            metadata = json.load(f)
    except (OSError, ValueError) as e:
        raise CorruptDatasetError(f"cannot read {path}: {e}") from e
    if not isinstance(metadata, dict):
        raise CorruptDatasetError(f"{path} does not hold a metadata object")
    return metadata


def flatten_observations(observations: Any, space: gymnasium.Space) -> np.ndarray:
    """One episode's observations -> [T, D] float array.

    Box: reshaped to [T, -1]. Dict: the entries in the order of the space's keys (gymnasium
    sorts a Dict space's keys alphabetically, e.g. achieved_goal, desired_goal, observation for
    PointMaze), each flattened, concatenated. Tuple: in order. This is the order of
    gymnasium.spaces.flatten.
    """
    if isinstance(space, gymnasium.spaces.Dict):
        return np.concatenate(
            [flatten_observations(observations[k], s) for k, s in space.spaces.items()], axis=-1
        )
    if isinstance(space, gymnasium.spaces.Tuple):
        return np.concatenate(
            [flatten_observations(o, s) for o, s in zip(observations, space.spaces)], axis=-1
        )
    if isinstance(space, gymnasium.spaces.Box):
        arr = np.asarray(observations)
        return arr.reshape(arr.shape[0], -1)
    raise DatasetMismatchError(f"observation space {space} is not supported (Box/Dict/Tuple)")


def read_episodes(
    minari_id: str, observation_key: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """All episodes of minari_id as flat host arrays, plus the dataset's metadata.

    Returns ({"observations" [N, S], "next_observations" [N, S], "actions" [N, A],
    "rewards" [N], "terminals" [N] bool, "timeouts" [N] bool}, metadata), N the total steps:
    each episode contributes its transitions (o[t], a[t], r[t], o[t+1]). Dict observations are
    flattened as flatten_observations says, or, with observation_key, reduced to that entry.
    Raises MissingDatasetError / CorruptDatasetError / DatasetMismatchError.
    """
    import minari  # Deferred: importing minari costs ~1 s.

    data_path = dataset_dir(minari_id) / "data"
    if not data_path.is_dir():
        raise MissingDatasetError(f"no Minari dataset {minari_id!r} at {data_path.parent}")
    try:
        dataset = minari.MinariDataset(data_path)
        space = dataset.observation_space
        if observation_key is not None:
            if not isinstance(space, gymnasium.spaces.Dict) or observation_key not in space.spaces:
                raise DatasetMismatchError(
                    f"Minari dataset {minari_id!r} has no observation entry {observation_key!r} "
                    f"(observation space: {space})"
                )
            space = space.spaces[observation_key]
        parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("obs", "next_obs", "actions", "rewards", "terminals", "timeouts")
        }
        episodes = dataset.storage.get_episodes(dataset.episode_indices)
        for episode in episodes:
            obs = episode["observations"]
            obs = flatten_observations(obs[observation_key] if observation_key else obs, space)
            steps = len(episode["rewards"])
            if obs.shape[0] != steps + 1:
                raise CorruptDatasetError(
                    f"episode {episode['id']} has {obs.shape[0]} observations for {steps} steps"
                )
            parts["obs"].append(obs[:-1])
            parts["next_obs"].append(obs[1:])
            parts["actions"].append(np.asarray(episode["actions"]).reshape(steps, -1))
            parts["rewards"].append(np.asarray(episode["rewards"]).reshape(steps))
            parts["terminals"].append(np.asarray(episode["terminations"]).reshape(steps))
            parts["timeouts"].append(np.asarray(episode["truncations"]).reshape(steps))
        metadata = read_metadata(minari_id)
    except DatasetError:
        raise
    except Exception as e:  # h5py/arrow/json/minari raise many types for a damaged file.
        raise CorruptDatasetError(
            f"Minari dataset {minari_id!r} at {data_path} cannot be read "
            f"({type(e).__name__}: {e})"
        ) from e
    if not parts["rewards"]:
        raise CorruptDatasetError(f"Minari dataset {minari_id!r} at {data_path} has no episodes")
    arrays = {
        "observations": np.concatenate(parts["obs"]),
        "next_observations": np.concatenate(parts["next_obs"]),
        "actions": np.concatenate(parts["actions"]),
        "rewards": np.concatenate(parts["rewards"]),
        "terminals": np.concatenate(parts["terminals"]).astype(bool),
        "timeouts": np.concatenate(parts["timeouts"]).astype(bool),
    }
    return arrays, metadata


@dataclasses.dataclass(frozen=True)
class Episode:
    """One episode as Minari stores it.

    observations [T+1, S] (the reset observation first), actions [T, A], rewards [T],
    terminations [T] and truncations [T] bool (at most the last step is True in either),
    infos: name -> [T+1, ...] or None, seed: the reset seed (None when the episode continues
    the previous one, as a cut stream does).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    infos: dict[str, np.ndarray] | None = None
    seed: int | None = None

    @property
    def num_steps(self) -> int:
        return self.rewards.shape[0]


def write_stream(
    minari_id: str,
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    infos: dict[str, np.ndarray],
    chunk_length: int,
    **dataset_kwargs: Any,
) -> pathlib.Path:
    """Writes one continuous stream as a Minari dataset of consecutive episodes.

    observations [N+1, S], actions [N, A], rewards [N], infos: name -> [N+1, ...] (per
    observation). The stream is cut into episodes of chunk_length steps (the last may be
    shorter), each ending with truncation=True (a cut, not a termination); episode k's last
    observation is episode k+1's first. dataset_kwargs: those of write_episodes.
    Returns the dataset's directory.
    """
    num_steps = actions.shape[0]
    if observations.shape[0] != num_steps + 1 or rewards.shape[0] != num_steps:
        raise ValueError("observations must have one row more than actions and rewards")
    episodes = []
    for start in range(0, num_steps, chunk_length):
        end = min(start + chunk_length, num_steps)
        steps = end - start
        truncations = np.zeros(steps, bool)
        truncations[-1] = True
        episodes.append(
            Episode(
                observations=observations[start : end + 1],
                actions=actions[start:end],
                rewards=rewards[start:end],
                terminations=np.zeros(steps, bool),
                truncations=truncations,
                infos={name: value[start : end + 1] for name, value in infos.items()},
            )
        )
    return write_episodes(minari_id, episodes, **dataset_kwargs)


def write_episodes(
    minari_id: str,
    episodes: list[Episode],
    env_id: str,
    ref_min_score: float,
    ref_max_score: float,
    num_episodes_average_score: int,
    description: str,
    algorithm_name: str,
    code_permalink: str,
    extra_metadata: dict[str, Any],
) -> pathlib.Path:
    """Writes episodes as Minari dataset minari_id, in the layout Minari's own DataCollector
    gives (so the reader is the one real datasets go through).

    env_id is both the collection and the evaluation env; ref_min_score / ref_max_score are
    stored as Minari's reference returns. extra_metadata is stored under the key "lfjax", with
    "complete": True written last so a half-written dataset is recognizable.
    Returns the dataset's directory.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    buffers = [
        EpisodeBuffer(
            id=k,
            seed=e.seed,
            observations=e.observations,
            actions=e.actions,
            rewards=e.rewards,
            terminations=e.terminations,
            truncations=e.truncations,
            infos=e.infos,
        )
        for k, e in enumerate(episodes)
    ]
    try:
        with warnings.catch_warnings():
            # author_email is the one field Minari asks for that a generated dataset lacks.
            warnings.filterwarnings("ignore", message=".*author_email.*")
            minari.create_dataset_from_buffers(
                dataset_id=minari_id,
                buffer=buffers,
                env=env_id,
                eval_env=env_id,
                algorithm_name=algorithm_name,
                author="lfjax",
                code_permalink=code_permalink,
                ref_min_score=ref_min_score,
                ref_max_score=ref_max_score,
                num_episodes_average_score=num_episodes_average_score,
                description=description,
            )
        dataset = minari.MinariDataset(dataset_dir(minari_id) / "data")
        dataset.storage.update_metadata({"lfjax": {**extra_metadata, "complete": True}})
    except BaseException:
        delete_dataset(minari_id)  # Never leave a half-written dataset behind.
        raise
    return dataset_dir(minari_id)
