"""D4RL's hdf5 locomotion files -> Minari datasets: the medium-replay datasets Minari lacks.

    convert_d4rl_hdf5("hopper-medium-replay", "hopper_medium_replay-v2.hdf5")
    # = python -m experiments.convert_d4rl --env=hopper-medium-replay --hdf5=...
    load_dataset("hopper-medium-replay")          # then loads lfjax/hopper-medium-replay-v0

A D4RL *-v2.hdf5 mujoco file is one stream of N steps, episodes one after another:
observations [N, S], actions [N, A], rewards [N], terminals [N], timeouts [N], and in most v2
files next_observations [N, S] (its infos/* and metadata/* groups are not needed). An episode
ends at a terminal (the env terminated) or a timeout (the time limit cut it); a trailing piece
that ends at neither was cut by the end of the stream. Minari stores each episode with T + 1
observations and keeps terminations apart from truncations, as lfjax's loader needs: only a
termination becomes a terminal of the TD target, timeouts and the trailing piece are
truncations.
"""

from __future__ import annotations

import hashlib
import pathlib
from typing import Any

import numpy as np

from lfjax.data import minari_io, validation
from lfjax.data.minari_io import DatasetError, Episode
from lfjax.data.registry import REGISTRY, EnvSpec, UnknownEnvError
from lfjax.provenance import package_versions

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
OPTIONAL_KEYS = ("next_observations",)

# D4RL's locomotion actions come from tanh-squashed policies, so |a| <= 1 up to float rounding;
# anything beyond is another env's or a damaged file. The values are stored unchanged (the flow
# clamps its input), so the tolerance only decides what we refuse: the loader's own
# (lfjax.data.validation), so that nothing converted is refused when it is loaded.
ACTION_TOLERANCE = validation.ACTION_TOLERANCE

SOURCE = "converted from D4RL hdf5"
# Bumped when the same file would convert to different episodes or metadata.
CONVERTER_VERSION = 1


class D4RLFileError(DatasetError, ValueError):
    """The hdf5 file is missing, unreadable, or not D4RL's data for the env asked for; the
    message names the file, the dataset key and what to do."""


def medium_replay_names() -> tuple[str, ...]:
    """The registry names the converter accepts."""
    return tuple(n for n, s in REGISTRY.items() if s.d4rl_hdf5_name is not None)


def convert_d4rl_hdf5(
    env_name: str, hdf5_path: str | pathlib.Path, overwrite: bool = False
) -> str:
    """Converts D4RL's hdf5 file for env_name (a <env>-medium-replay name) into the Minari
    dataset load_dataset(env_name) reads, lfjax/<env>-medium-replay-v0, under Minari's data
    path; returns its Minari id.

    The file is read and validated (read_d4rl_hdf5) before anything is written, so a bad file
    never replaces a good dataset. Episodes as split_episodes makes them; the metadata's
    "lfjax" entry records the source file (name, size, sha256) and the counts.
    overwrite: replace an existing dataset; without it an existing one raises
        DatasetExistsError.
    Raises UnknownEnvError / ValueError (a name that is not medium-replay: the message says
    where that dataset comes from), D4RLFileError, DatasetExistsError.
    """
    spec = _medium_replay_spec(env_name)
    minari_id = spec.minari_ids[0]
    if minari_io.dataset_dir(minari_id).exists() and not overwrite:
        raise minari_io.DatasetExistsError(
            f"Minari dataset {minari_id} already exists at {minari_io.dataset_dir(minari_id)}; "
            f"pass --overwrite to replace it."
        )
    path = pathlib.Path(hdf5_path)
    steps = read_d4rl_hdf5(path, spec)
    episodes, counts = split_episodes(steps)
    if not episodes:
        raise D4RLFileError(
            f"{path}: its {len(steps['rewards'])} step(s) leave no transition once each "
            f"episode's last step without a next observation is dropped; "
            f"{_fix(spec)}"
        )
    settings: dict[str, Any] = {
        "env_name": spec.name,
        "source": SOURCE,
        "source_file": path.name,
        "source_bytes": path.stat().st_size,
        "source_sha256": _sha256(path),
        "converter_version": CONVERTER_VERSION,
        "final_observation": (
            "next_observations[last step]" if "next_observations" in steps
            else "D4RL's qlearning_dataset convention: timeout steps and the file's last row "
            "dropped, their observation the final one; a terminal's next is the next row"
        ),
        "source_steps": int(len(steps["rewards"])),
        "num_steps": int(sum(e.num_steps for e in episodes)),
        "num_episodes": len(episodes),
        **counts,
        "reference_returns": "D4RL's REF_MIN_SCORE / REF_MAX_SCORE (d4rl/infos.py)",
        "d4rl_ref_min_score": spec.d4rl_ref_min_score,
        "d4rl_ref_max_score": spec.d4rl_ref_max_score,
        "versions": package_versions("lfjax", "h5py", "minari"),
        # No creation time (unlike generated datasets): the metadata is the dataset's identity
        # for flow reuse, and converting the same file again is the same data.
    }
    minari_io.write_episodes(
        minari_id,
        episodes,
        env_id=spec.eval_env_id,
        algorithm_name="D4RL medium-replay (SAC replay buffer), " + SOURCE,
        code_permalink="lfjax/datagen/d4rl_hdf5.py",
        ref_min_score=spec.d4rl_ref_min_score,
        ref_max_score=spec.d4rl_ref_max_score,
        # D4RL does not say over how many episodes its references were measured; Minari's
        # default, so the field is not left out.
        num_episodes_average_score=100,
        description=(
            f"D4RL's {spec.name}-v2 ({path.name}, sha256 {settings['source_sha256']}), "
            f"{SOURCE} by lfjax: collected by D4RL in gym's mujoco-py env, evaluated here in "
            f"gymnasium's {spec.eval_env_id}. Terminals are terminations; timeouts and the "
            f"end of the stream are truncations. Reference returns are D4RL's."
        ),
        extra_metadata=settings,
        overwrite=overwrite,  # the old dataset stays until the new one is complete
    )
    return minari_id


def read_d4rl_hdf5(path: pathlib.Path, spec: EnvSpec) -> dict[str, np.ndarray]:
    """D4RL's hdf5 file -> its validated top-level arrays.

    Returns observations [N, S] float64, actions [N, A] float32, rewards [N] float64,
    terminals [N] bool, timeouts [N] bool and, when the file has them, next_observations
    [N, S] float64 (S = spec.obs_dim, A = spec.action_dim). The float casts are exact (D4RL
    stores float32) and give the dtypes of gymnasium's v5 spaces, as Minari's own datasets.
    Raises D4RLFileError for: a missing or unreadable file, a missing key, lengths that
    differ, the wrong S or A for spec, non-finite values, terminals / timeouts that are not
    0 / 1, actions outside [-1, 1] by more than ACTION_TOLERANCE.
    """
    if not path.is_file():
        what = "not a file" if path.exists() else "no such file"
        raise D4RLFileError(f"{path}: {what}; {_fix(spec)}")
    import h5py  # Deferred, as minari: only the converter needs it.

    try:
        with h5py.File(path, "r") as f:
            keys = (*REQUIRED_KEYS, *OPTIONAL_KEYS)
            present = [k for k in keys if isinstance(f.get(k), h5py.Dataset)]
            missing = [k for k in REQUIRED_KEYS if k not in present]
            if missing:
                raise D4RLFileError(
                    f"{path}: no top-level dataset {', '.join(repr(k) for k in missing)} "
                    f"(it has {sorted(f.keys())}); D4RL's *-v2.hdf5 locomotion files have "
                    f"{', '.join(REQUIRED_KEYS)} (v0/v1 files without 'timeouts' are not "
                    f"supported); {_fix(spec)}"
                )
            raw = {k: f[k][()] for k in present}
    except D4RLFileError:
        raise
    except Exception as e:  # h5py raises OSError, KeyError, ValueError... for a damaged file.
        raise D4RLFileError(
            f"{path} cannot be read as hdf5 ({type(e).__name__}: {e}); {_fix(spec)}"
        ) from e
    return _validated(raw, path, spec)


def _validated(
    raw: dict[str, np.ndarray], path: pathlib.Path, spec: EnvSpec
) -> dict[str, np.ndarray]:
    """read_d4rl_hdf5's checks and casts on the file's raw arrays."""
    n = raw["rewards"].shape[0] if raw["rewards"].ndim else 0
    if n == 0:
        raise D4RLFileError(f"{path}: 'rewards' holds no steps; {_fix(spec)}")
    widths = {
        "observations": spec.obs_dim, "next_observations": spec.obs_dim,
        "actions": spec.action_dim, "rewards": None, "terminals": None, "timeouts": None,
    }
    for key, array in raw.items():
        if array.ndim == 0 or array.shape[0] != n:
            raise D4RLFileError(
                f"{path}: {key!r} has {array.shape[0] if array.ndim else 0} rows but "
                f"'rewards' has {n}; every top-level dataset has one row per step, so the file "
                f"is truncated or edited; {_fix(spec)}"
            )
        width = widths[key]
        shape = (n,) if width is None else (n, width)
        if array.shape != shape:
            what = "a flat [N] array" if width is None else f"{width} columns"
            raise D4RLFileError(
                f"{path}: {key!r} has shape {array.shape} but {spec.name} needs {what} "
                f"({spec.eval_env_id}: observation {spec.obs_dim}, action {spec.action_dim}); "
                f"is it another env's file? {_fix(spec)}"
            )
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise D4RLFileError(
                f"{path}: {key!r} has dtype {array.dtype}, not numbers; {_fix(spec)}"
            )
        if width is None and key != "rewards":
            flags = np.isin(array, (0, 1))
            if not flags.all():
                raise D4RLFileError(
                    f"{path}: {key!r} holds values other than 0 / 1 (first at row "
                    f"{int(np.flatnonzero(~flags)[0])}); {_fix(spec)}"
                )
        elif not np.isfinite(array).all():
            bad = np.flatnonzero(~np.isfinite(array).reshape(n, -1).all(axis=1))
            raise D4RLFileError(
                f"{path}: {key!r} has non-finite values in {len(bad)} row(s) (first at row "
                f"{int(bad[0])}); the file is damaged; {_fix(spec)}"
            )
    excess = np.abs(raw["actions"]).max(axis=1) - 1.0
    if (excess > ACTION_TOLERANCE).any():
        row = int(np.argmax(excess))
        raise D4RLFileError(
            f"{path}: 'actions' leave [-1, 1] (|a| = {1.0 + excess[row]:.6g} at row {row}); "
            f"{spec.eval_env_id}'s actions are in [-1, 1] and D4RL's are (tanh policies), so "
            f"this is not D4RL's {spec.name} data; {_fix(spec)}"
        )
    steps = {
        "observations": raw["observations"].astype(np.float64),
        "actions": raw["actions"].astype(np.float32),
        "rewards": raw["rewards"].astype(np.float64),
        "terminals": raw["terminals"].astype(bool),
        "timeouts": raw["timeouts"].astype(bool),
    }
    if "next_observations" in raw:
        steps["next_observations"] = raw["next_observations"].astype(np.float64)
    return steps


def split_episodes(steps: dict[str, np.ndarray]) -> tuple[list[Episode], dict[str, int]]:
    """D4RL's stream of steps -> Minari episodes (no I/O).

    steps: observations [N, S], actions [N, A], rewards [N], terminals [N] bool,
    timeouts [N] bool, optionally next_observations [N, S].
    Episodes end after a step that is a terminal or a timeout; what follows the last such
    step is a trailing episode cut by the end of the stream. Each episode's final (T+1-th)
    observation:
    - with next_observations: next_observations of its last step; every step is kept.
      Where next_observations[t] != observations[t + 1] with neither flag at t, the stream
      changed episode without saying so; the episode is cut there too (a truncation), so
      every stored step keeps its own next observation.
    - without: D4RL's qlearning_dataset convention, so that the loaded transitions are
      exactly its (o[t], a[t], r[t], o[t + 1], terminal[t]): a step that is a timeout, or the
      file's last row, has no next observation in the file, so it is dropped and its own
      observation becomes the final one (a one-step episode then vanishes). A terminal step is
      kept and its final observation is the next row, the next episode's first observation,
      as qlearning_dataset takes it: meaningless, but masked by the terminal in every TD
      target.
    termination is the last kept step's terminal; truncation marks timeouts, unflagged
    boundaries, the trailing episode, and episodes whose last step was dropped. A step that is
    both terminal and timeout: with next_observations both flags stay set (terminal wins in the
    TD target); without, it is dropped (as qlearning_dataset, which checks timeouts first).
    Returns (episodes, counts) with counts num_terminations, num_truncations,
    num_timeout_episodes, num_trailing_steps, num_unflagged_boundaries, num_dropped_steps.
    """
    obs, terminals, timeouts = steps["observations"], steps["terminals"], steps["timeouts"]
    next_obs = steps.get("next_observations")
    n = obs.shape[0]
    ends = terminals | timeouts
    unflagged = np.zeros(n, bool)
    if next_obs is not None:
        unflagged[:-1] = ~ends[:-1] & np.any(next_obs[:-1] != obs[1:], axis=1)
    cuts = ends | unflagged
    trailing = 0 if cuts[-1] else int(n - (np.flatnonzero(cuts)[-1] + 1 if cuts.any() else 0))
    cuts[-1] = True
    lasts = np.flatnonzero(cuts)
    firsts = np.concatenate([[0], lasts[:-1] + 1])

    episodes, dropped, timeout_episodes = [], 0, 0
    for first, last in zip(firsts, lasts):
        terminated, truncated = bool(terminals[last]), not terminals[last]
        timeout_episodes += bool(timeouts[last])
        if next_obs is not None:
            stop, final = last + 1, next_obs[last]
            truncated = bool(timeouts[last]) or truncated
        elif timeouts[last] or last == n - 1:
            stop, final = last, obs[last]
            terminated, truncated = False, True
            dropped += 1
        else:
            stop, final = last + 1, obs[last + 1]
        if stop == first:
            continue
        length = stop - first
        terminations = np.zeros(length, bool)
        truncations = np.zeros(length, bool)
        terminations[-1], truncations[-1] = terminated, truncated
        episodes.append(
            Episode(
                observations=np.concatenate([obs[first:stop], final[None]]),
                actions=steps["actions"][first:stop],
                rewards=steps["rewards"][first:stop],
                terminations=terminations,
                truncations=truncations,
            )
        )
    counts = {
        "num_terminations": int(sum(e.terminations[-1] for e in episodes)),
        "num_truncations": int(sum(e.truncations[-1] for e in episodes)),
        "num_timeout_episodes": timeout_episodes,
        "num_trailing_steps": trailing,
        "num_unflagged_boundaries": int(unflagged.sum()),
        "num_dropped_steps": dropped,
    }
    return episodes, counts


def _medium_replay_spec(env_name: str) -> EnvSpec:
    """env_name's EnvSpec when it is a medium-replay name; otherwise an error that says where
    that name's data comes from."""
    accepted = ", ".join(medium_replay_names())
    spec = REGISTRY.get(env_name)
    if spec is None:
        raise UnknownEnvError(
            f"unknown environment {env_name!r}; the converter accepts {accepted}"
        )
    if spec.d4rl_hdf5_name is None:
        if spec.is_maze:
            source = f"maze2d is generated here: {spec.make_dataset_command}"
        else:
            source = (
                f"{spec.kind} comes from Minari: minari download {' '.join(spec.minari_ids)}"
            )
        raise ValueError(
            f"{env_name} is not a medium-replay dataset, which is all the converter writes "
            f"(it accepts {accepted}); {source}"
        )
    return spec


def _fix(spec: EnvSpec) -> str:
    return (
        f"{spec.name} needs D4RL's own {spec.d4rl_hdf5_name} (from D4RL's gym_mujoco_v2 "
        f"datasets), unmodified"
    )


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
