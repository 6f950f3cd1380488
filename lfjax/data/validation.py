"""Checks a dataset as it is loaded, before anything trains on it: a non-finite value or an
action outside the environment's action space would otherwise train a flow and an agent
silently (into NaNs, or into actions the env clips).

What is refused (`InvalidDatasetError`, one line naming the dataset, the field, the episode and
step of the first offence, the number of offences, and what to do):
- observation or action widths that differ from the environment's (`DatasetMismatchError`);
- episodes without a single step;
- non-finite observations (the observation a step starts from, or the one it ends in),
  actions or rewards;
- actions outside [-action_bound, action_bound] by more than ACTION_TOLERANCE.
"""

from __future__ import annotations

import numpy as np

from lfjax.data.minari_io import DatasetError, DatasetMismatchError
from lfjax.data.registry import EnvSpec

# float32 rounding of a tanh or a clip never leaves the bound by more than ~1.2e-7.
ACTION_TOLERANCE = 1e-6


class InvalidDatasetError(DatasetError, ValueError):
    """The dataset holds values no training should see; the message says where and what to do."""


def check_episodes(minari_id: str, arrays: dict[str, np.ndarray], spec: EnvSpec, fix: str) -> None:
    """Raises InvalidDatasetError for the first kind of offence found (module docstring).

    arrays: as `lfjax.data.minari_io.read_episodes` returns them: observations [N, S],
    next_observations [N, S], actions [N, A], rewards [N], and episode_lengths [E] (steps per
    episode, in order; they sum to N). fix: what the user should do, ending the message.
    """
    for field, width in (("observations", spec.obs_dim), ("actions", spec.action_dim)):
        if arrays[field].shape[1] != width:
            raise DatasetMismatchError(
                f"{minari_id}: {field} have {arrays[field].shape[1]} columns but {spec.name}'s "
                f"environment ({spec.eval_env_id}) has {width}: it is not {spec.name}'s data; "
                f"check --env, or {fix}"
            )
    lengths = np.asarray(arrays["episode_lengths"])
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise InvalidDatasetError(
            f"{minari_id}: {empty.size} episode(s) have no steps (the first is episode "
            f"{empty[0]} of {lengths.size}); {fix}"
        )
    excess = np.abs(arrays["actions"]) - spec.action_bound
    offences = (
        ("observations", ~_finite_rows(arrays["observations"]), "non-finite values"),
        ("next_observations", ~_finite_rows(arrays["next_observations"]), "non-finite values"),
        ("actions", ~_finite_rows(arrays["actions"]), "non-finite values"),
        ("rewards", ~_finite_rows(arrays["rewards"]), "non-finite values"),
        ("actions", (excess > ACTION_TOLERANCE).any(axis=1),
         f"values outside the action space [-{spec.action_bound:g}, {spec.action_bound:g}] "
         f"(by more than {ACTION_TOLERANCE:g})"),
    )
    for field, bad, what in offences:
        rows = np.flatnonzero(bad)
        if rows.size:
            episode, step = locate(rows[0], lengths)
            value = arrays[field][rows[0]]
            raise InvalidDatasetError(
                f"{minari_id}: {rows.size} step(s) have {what} in {field}, the first at episode "
                f"{episode}, step {step} ({field} = {np.array2string(np.asarray(value), precision=6)}); "
                f"{fix}"
            )


def _finite_rows(x: np.ndarray) -> np.ndarray:
    """[N] bool: whether row i of x ([N] or [N, D]) is finite."""
    return np.isfinite(x).reshape(x.shape[0], -1).all(axis=1)


def locate(row: int, lengths: np.ndarray) -> tuple[int, int]:
    """(episode, step within it) of flat row ``row`` of episodes of ``lengths`` steps."""
    ends = np.cumsum(lengths)
    episode = int(np.searchsorted(ends, row, side="right"))
    return episode, int(row - (ends[episode - 1] if episode else 0))
