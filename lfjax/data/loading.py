"""load_dataset: a registry name -> the dataset in device memory, with its reference returns.

Which Minari dataset a name loads:
- maze2d-<maze>: our generated lfjax/maze2d-<maze>-v1 (registry.MAZE2D_DATASET_VERSION). A
  dataset of an earlier recipe (lfjax/maze2d-<maze>-v0, or a v1 whose metadata records another
  recipe_version) is never loaded in its place: `outdated_datasets` finds the old ids, and the
  missing-dataset message names them. When it is missing but Minari's own
  D4RL/pointmaze/<maze>-v2 is in Minari's data path, that one is loaded instead (with a
  warning); pass minari_id= to pick either explicitly. A Minari pointmaze dataset is made to
  match our evaluation env: its dict observation is reduced to "observation" (x, y, vx, vy,
  the same frame as ours) and its rewards are relabeled to our sparse goal reward; its own
  reference returns belong to gymnasium-robotics' task, so the registry's (ours) are used.
- <env>-medium: mujoco/<env>/medium-v0; <env>-medium-expert: mujoco/<env>/medium-v0 followed by
  mujoco/<env>/expert-v0 (D4RL's medium-expert is that concatenation);
  <env>-medium-replay: lfjax/<env>-medium-replay-v0, which the user converts from D4RL's hdf5
  (`python -m experiments.convert_d4rl`, lfjax.datagen.d4rl_hdf5; Minari publishes no
  medium-replay). When any of these is missing but the generated stand-in
  lfjax-generated/<name>-v0 (`python -m experiments.make_dataset --env=<name>`) is there, the
  stand-in is loaded instead, with a warning: it is NOT D4RL's data.
Reference returns: the dataset's ref_min_score / ref_max_score when present, else the registry's.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from lfjax.data import minari_io
from lfjax.data.minari_io import (
    CorruptDatasetError,
    DatasetMismatchError,
    MissingDatasetError,
    OutdatedDatasetError,
    SubstituteDatasetWarning,
)
from lfjax.data.registry import MAZE2D_DATASET_VERSION, EnvSpec, get_env_spec
from lfjax.data.transitions import StateStats, Transitions, compute_state_stats
from lfjax.data.validation import check_episodes
from lfjax.evaluation import normalized_score

# What changed in each maze2d recipe since the version named (for the outdated-data messages).
MAZE2D_RECIPE_CHANGES = {
    1: "noise was added to the controller's unclipped PD output (D4RL clips, adds noise, clips "
    "again), which left 51 % of action entries at exactly ±1 instead of D4RL's 31 %, and "
    "shortest-path ties broke in another order than D4RL's",
}
# The maze2d recipe version that writes MAZE2D_DATASET_VERSION (lfjax.datagen.maze2d.RECIPE_VERSION,
# repeated here so that loading never imports gymnasium-robotics; a test keeps them equal).
MAZE2D_RECIPE_VERSION = 2


def outdated_datasets(spec: EnvSpec) -> list[str]:
    """Minari ids of spec's generated maze2d datasets written by an earlier recipe (older
    dataset versions) that exist on this machine; [] for other names."""
    if not spec.is_maze:
        return []
    ids = [f"lfjax/maze2d-{spec.maze}-v{v}" for v in range(MAZE2D_DATASET_VERSION)]
    return [i for i in ids if minari_io.dataset_exists(i)]


def outdated_note(spec: EnvSpec) -> str:
    """One sentence about outdated datasets of spec on this machine, or ''."""
    old = outdated_datasets(spec)
    if not old:
        return ""
    return (
        f"{' and '.join(old)} {'is' if len(old) == 1 else 'are'} there but "
        f"{'was' if len(old) == 1 else 'were'} made by an outdated recipe ("
        f"{MAZE2D_RECIPE_CHANGES[1]}) and {'is' if len(old) == 1 else 'are'} not used; "
        f"delete {'it' if len(old) == 1 else 'them'} from {minari_io.datasets_root()} to free "
        f"the space."
    )


@dataclasses.dataclass(frozen=True)
class LoadedDataset:
    """A dataset ready for training.

    Attributes:
        transitions: raw (unnormalized) float32 device arrays, N rows.
        state_stats: mean / std [S] of transitions.observations (compute_state_stats).
        spec: the registry entry; spec.make_eval_env builds the matching evaluation env.
        minari_id: what was loaded ("a + b" for a concatenation).
        ref_min_score, ref_max_score: reference returns for the normalized score.
        metadata: our generation settings for a dataset generated here (maze2d, stand-ins),
            the provenance of one converted from D4RL's hdf5 (source file, sha256, counts),
            else {}.
    """

    transitions: Transitions
    state_stats: StateStats
    spec: EnvSpec
    minari_id: str
    ref_min_score: float
    ref_max_score: float
    metadata: dict[str, Any]

    def normalized_score(self, returns):
        """D4RL normalized score: 100 (return - ref_min) / (ref_max - ref_min), elementwise."""
        return normalized_score(returns, self.ref_min_score, self.ref_max_score)


def d4rl_pointmaze_id(maze: str) -> str:
    """Minari's own D4RL pointmaze dataset id for a maze."""
    return f"D4RL/pointmaze/{maze}-v2"


def load_dataset(env_name: str, minari_id: str | None = None) -> LoadedDataset:
    """env_name (a registry name) -> LoadedDataset in device memory (module docstring says
    which Minari dataset). minari_id overrides the choice (one id; any Minari dataset whose
    shapes fit the env).

    Raises UnknownEnvError, MissingDatasetError (the message says how to create or obtain
    the dataset, and where Minari looks), CorruptDatasetError, DatasetMismatchError, and
    InvalidDatasetError for data no training should see (non-finite values, actions outside
    the action space, empty episodes: `lfjax.data.validation`), whatever its source.
    """
    spec = get_env_spec(env_name)
    if minari_id is not None:
        ids: tuple[str, ...] = (minari_id,)
    else:
        ids = spec.minari_ids
        if spec.is_maze and not minari_io.dataset_exists(ids[0]):
            fallback = d4rl_pointmaze_id(spec.maze)
            if minari_io.dataset_exists(fallback):
                warnings.warn(
                    f"{ids[0]} not found; loading Minari's {fallback} instead (relabeled to "
                    f"our goal reward). Generate ours with: {spec.generated_by}",
                    SubstituteDatasetWarning, stacklevel=2,
                )
                ids = (fallback,)
        elif spec.stand_in_id is not None:
            absent = [i for i in ids if not minari_io.dataset_exists(i)]
            if absent and minari_io.dataset_exists(spec.stand_in_id):
                warnings.warn(
                    f"{' and '.join(absent)} not found; loading the generated stand-in "
                    f"{spec.stand_in_id} instead. It is NOT D4RL data: its normalized scores "
                    f"are not comparable with the paper's. Put the real dataset in "
                    f"{minari_io.datasets_root()} to use it"
                    + (f" ({spec.convert_command})." if spec.convert_command else "."),
                    SubstituteDatasetWarning, stacklevel=2,
                )
                ids = (spec.stand_in_id,)
    missing = [i for i in ids if not minari_io.dataset_exists(i)]
    if missing:
        raise MissingDatasetError(missing_dataset_message(spec, missing))

    parts, metadatas, relabeled = [], [], False
    for i in ids:
        arrays, metadata, was_relabeled = _read_one(spec, i)
        parts.append(arrays)
        metadatas.append(metadata)
        relabeled |= was_relabeled
    # Every part was checked (lfjax.data.validation): widths, empty episodes, finite values,
    # actions in the action space.
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    transitions = Transitions.from_numpy(
        observations=arrays["observations"],
        actions=arrays["actions"],
        rewards=arrays["rewards"],
        next_observations=arrays["next_observations"],
        terminals=arrays["terminals"],  # Truncations (timeouts) are deliberately not terminals.
    )
    ref_min, ref_max = _reference_scores(spec, metadatas[0], relabeled)
    return LoadedDataset(
        transitions=transitions,
        state_stats=compute_state_stats(transitions.observations),
        spec=spec,
        minari_id=" + ".join(ids),
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        metadata=dict(metadatas[0].get("lfjax", {})),
    )


def _read_one(
    spec: EnvSpec, minari_id: str
) -> tuple[dict[str, np.ndarray], dict[str, Any], bool]:
    """One Minari dataset -> (arrays, metadata, whether its rewards were relabeled)."""
    metadata = minari_io.read_metadata(minari_id)
    ours = metadata.get("lfjax")
    if ours is not None:
        if not ours.get("complete"):
            converted = minari_id == spec.minari_ids[0] and spec.convert_command is not None
            again = spec.convert_command if converted else spec.make_dataset_command
            raise CorruptDatasetError(
                f"{minari_id} at {minari_io.dataset_dir(minari_id)} was left half-written; "
                f"{'convert' if converted else 'regenerate'} it again: {again} --overwrite"
            )
        if ours.get("env_name") != spec.name:
            raise DatasetMismatchError(
                f"{minari_id} was generated for {ours.get('env_name')!r}, not {spec.name!r}"
            )
        version = ours.get("recipe_version")
        if spec.is_maze and version != MAZE2D_RECIPE_VERSION:
            change = MAZE2D_RECIPE_CHANGES.get(version, "the recipe has changed since")
            raise OutdatedDatasetError(
                f"{minari_id} at {minari_io.dataset_dir(minari_id)} was generated by maze2d "
                f"recipe version {version}, this lfjax writes version {MAZE2D_RECIPE_VERSION} "
                f"({change}); regenerate it: {spec.make_dataset_command} --overwrite"
            )
    foreign_maze = spec.is_maze and ours is None
    key = "observation" if foreign_maze and _has_dict_observation(metadata) else None
    arrays, metadata = minari_io.read_episodes(minari_id, observation_key=key)
    check_episodes(minari_id, arrays, spec, _fix(spec, minari_id, ours))
    arrays.pop("timeouts")
    arrays.pop("episode_lengths")
    if foreign_maze:
        from lfjax.envs import maze2d

        # Same simulator and frame as our env, so only the reward needs to become ours.
        goal = maze2d.get_layout(spec.maze).goal
        arrays["rewards"] = maze2d.goal_reward(arrays["next_observations"][:, :2], goal)
    return arrays, metadata, foreign_maze


def _fix(spec: EnvSpec, minari_id: str, ours: dict[str, Any] | None) -> str:
    """What to do about a dataset that fails check_episodes, by where it came from."""
    where = minari_io.dataset_dir(minari_id)
    if ours is not None and ours.get("source") is not None:  # converted from D4RL's hdf5
        return (f"the file it was converted from ({ours.get('source_file')}) is damaged or not "
                f"D4RL's: convert an intact copy, {spec.convert_command} --overwrite")
    if ours is not None:  # generated here: a bug, or a damaged disk
        return (f"regenerate it ({spec.make_dataset_command} --overwrite) and report it if "
                "that happens again")
    return (f"the files at {where} are damaged or not Minari's {minari_id}: delete that "
            f"directory and download it again (minari download {minari_id})")


def _has_dict_observation(metadata: dict[str, Any]) -> bool:
    return '"type": "Dict"' in str(metadata.get("observation_space", ""))


def _reference_scores(
    spec: EnvSpec, metadata: dict[str, Any], relabeled: bool
) -> tuple[float, float]:
    if not relabeled:
        lo, hi = metadata.get("ref_min_score"), metadata.get("ref_max_score")
        if lo is not None and hi is not None:
            return float(lo), float(hi)
    return spec.ref_min_score, spec.ref_max_score


def missing_dataset_message(spec: EnvSpec, missing: list[str]) -> str:
    """What to run to get spec's dataset, and where Minari looks for it."""
    root = minari_io.datasets_root()
    where = (
        f"Minari looks in {root} (set MINARI_DATASETS_PATH to change it; "
        f"default ~/.minari/datasets)."
    )
    names = ", ".join(missing)
    if spec.is_maze:
        old = outdated_note(spec)
        return (
            f"No dataset for {spec.name}: {names} not found. {where}\n"
            + (f"{old}\n" if old else "")
            + f"Create it with:\n    {spec.generated_by}\n"
            f"(add --num_steps=N for a smaller one; or call "
            f"lfjax.datagen.generate_dataset({spec.name!r})). Minari's own "
            f"{d4rl_pointmaze_id(spec.maze)} is used instead when it is there."
        )
    stand_in = (
        f"to try the pipeline without it, generate a small stand-in (NOT D4RL data; scores not "
        f"comparable with the paper's): {spec.make_dataset_command}"
    )
    if spec.kind == "medium-replay":
        return (
            f"no dataset for {spec.name}: {names} not found. {where} Minari publishes no "
            f"medium-replay dataset (only simple/medium/expert for the gymnasium v5 envs): put "
            f"one there as Minari dataset {names} by converting D4RL's hdf5: "
            f"`{spec.convert_command}`, or pass minari_id= to load another; {stand_in}"
        )
    return (
        f"no dataset for {spec.name}: {names} not found. {where} Get it on a machine with "
        f"internet with `minari download {' '.join(missing)}` and copy it there; {stand_in}"
    )
