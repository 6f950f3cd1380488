"""Generating the maze2d datasets (D4RL's recipe, SPEC.md 6) as Minari datasets."""

from __future__ import annotations

import datetime
import importlib.metadata
import time
from typing import Any

from lfjax.data import minari_io
from lfjax.data.registry import get_env_spec


def generate_dataset(
    env_name: str,
    num_steps: int | None = None,
    seed: int = 0,
    ref_episodes: int = 100,
    progress: bool = True,
    overwrite: bool = False,
) -> str:
    """Generates env_name's maze2d dataset into Minari's data path; returns its Minari id.

    num_steps: stream length (default: D4RL's size, umaze 1M / medium 2M / large 4M).
    ref_episodes: episodes for each reference return (random policy, noise-free controller),
        stored as the dataset's ref_min_score / ref_max_score.
    overwrite: replace an existing dataset; without it an existing one raises
        DatasetExistsError. Only maze2d names can be generated (DatasetError otherwise).
    """
    # Deferred: gymnasium-robotics is only needed to generate and evaluate maze2d.
    from lfjax.data import maze2d

    spec = get_env_spec(env_name)
    if not spec.is_maze:
        raise minari_io.DatasetError(
            f"{env_name!r} cannot be generated here: only the maze2d datasets can. Obtain "
            f"{spec.minari_id} with `minari download` on a machine with internet."
        )
    (minari_id,) = spec.minari_ids
    num_steps = spec.default_num_steps if num_steps is None else int(num_steps)
    if num_steps < 1:
        raise ValueError(f"num_steps must be positive, got {num_steps}")
    if minari_io.dataset_dir(minari_id).exists():
        if not overwrite:
            raise minari_io.DatasetExistsError(
                f"Minari dataset {minari_id} already exists at "
                f"{minari_io.dataset_dir(minari_id)}; pass --overwrite to regenerate it."
            )
        minari_io.delete_dataset(minari_id)

    layout = maze2d.get_layout(spec.maze)
    bar = _progress_bar(num_steps, f"{env_name} stream") if progress else None
    start = time.perf_counter()
    stream = maze2d.collect_stream(
        spec.maze, num_steps, seed=seed, progress=bar.update if bar else None
    )
    stream_seconds = time.perf_counter() - start
    if bar:
        bar.close()
    refs = maze2d.reference_returns(spec.maze, num_episodes=ref_episodes, seed=seed)
    settings: dict[str, Any] = {
        "env_name": env_name,
        "recipe_version": maze2d.RECIPE_VERSION,
        "seed": seed,
        "num_steps": num_steps,
        "action_noise_std": maze2d.ACTION_NOISE_STD,
        "p_gain": maze2d.P_GAIN,
        "d_gain": maze2d.D_GAIN,
        "switch_radius": maze2d.SWITCH_RADIUS,
        "waypoint_jitter": maze2d.WAYPOINT_JITTER,
        "goal_cell": list(layout.goal_cell),
        "goal": [float(v) for v in layout.goal],
        "goal_radius": maze2d.GOAL_RADIUS,
        "goal_radius_note": "gymnasium-robotics' PointMaze uses 0.45 and a noisy goal; "
        "this dataset and lfjax's eval env use 0.5 around the exact goal-cell centre (D4RL)",
        "reward_from": "next observation (the eval env's reward for the same step)",
        "start_position_noise": maze2d.START_POSITION_NOISE,
        "start_velocity_std": maze2d.START_VELOCITY_STD,
        "chunk_length": layout.max_episode_steps,
        "ref_episodes": ref_episodes,
        "ref_random_return": refs.random,
        "ref_controller_return": refs.controller,
        # D4RL's reference script replanned only once (maze2d.ControllerPolicy): for
        # comparison with D4RL-normalized scores only, never used for normalization here.
        "ref_controller_return_d4rl_style": refs.controller_d4rl_style,
        "stream_seconds": round(stream_seconds, 2),
        "steps_per_second": round(num_steps / stream_seconds, 1),
        "versions": {
            pkg: importlib.metadata.version(pkg)
            for pkg in ("lfjax", "mujoco", "gymnasium", "gymnasium-robotics", "minari")
        },
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    minari_io.write_stream(
        minari_id,
        observations=stream.observations,
        actions=stream.actions,
        rewards=stream.rewards,
        infos={"goal": stream.goals},
        chunk_length=layout.max_episode_steps,
        env_id=layout.gym_id,
        ref_min_score=refs.random,
        ref_max_score=refs.controller,
        num_episodes_average_score=ref_episodes,
        description=(
            f"D4RL maze2d-{spec.maze} recipe on gymnasium-robotics PointMaze: waypoint "
            f"controller with N(0, {maze2d.ACTION_NOISE_STD}^2) action noise, random goal "
            f"cells, one continuous {num_steps}-step stream cut into "
            f"{layout.max_episode_steps}-step episodes (truncations are cuts, not resets); "
            f"sparse reward relabeled to goal cell {layout.goal_cell}; no terminals."
        ),
        extra_metadata=settings,
    )
    return minari_id


def _progress_bar(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", unit_scale=True, mininterval=1.0)
