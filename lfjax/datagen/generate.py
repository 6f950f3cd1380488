"""Generating datasets as Minari datasets: maze2d (D4RL's recipe, SPEC.md 6) and stand-ins for
the locomotion datasets (lfjax.datagen.locomotion; NOT D4RL data)."""

from __future__ import annotations

import datetime
import time
from typing import Any

from lfjax.data import minari_io
from lfjax.data.registry import EnvSpec, get_env_spec
from lfjax.provenance import package_versions


def generate_dataset(
    env_name: str,
    num_steps: int | None = None,
    seed: int = 0,
    ref_episodes: int = 100,
    progress: bool = True,
    overwrite: bool = False,
    train_steps: int | None = None,
) -> str:
    """Generates env_name's dataset into Minari's data path; returns its Minari id.

    maze2d-<maze>: D4RL's recipe as lfjax/maze2d-<maze>-v1. Locomotion names
    (e.g. hopper-medium): a generated stand-in as lfjax-generated/<name>-v0, NOT D4RL's data
    (lfjax.datagen.locomotion says how it is made); load_dataset uses it only when the real
    dataset is missing, and says so.
    num_steps: stream length (default spec.default_num_steps: maze2d D4RL's size, umaze 1M /
        medium 2M / large 4M; stand-ins 100k).
    ref_episodes: episodes for each reference return (maze2d: random policy and noise-free
        controller; stand-ins: random and trained policy), stored as the dataset's
        ref_min_score / ref_max_score.
    overwrite: replace an existing dataset; without it an existing one raises
        DatasetExistsError. The new dataset replaces the old one only once it is complete
        (`lfjax.data.minari_io.write_episodes`): a kill while generating leaves the old one.
    train_steps: stand-ins only: env steps of the behaviour policy's training (default
        locomotion.DEFAULT_TRAIN_STEPS).
    """
    spec = get_env_spec(env_name)
    minari_id = spec.minari_ids[0] if spec.is_maze else spec.stand_in_id
    num_steps = spec.default_num_steps if num_steps is None else int(num_steps)
    if num_steps < 1:
        raise ValueError(f"num_steps must be positive, got {num_steps}")
    if ref_episodes < 1:
        raise ValueError(f"ref_episodes must be positive, got {ref_episodes}")
    if spec.is_maze and train_steps is not None:
        raise ValueError("train_steps applies to the locomotion stand-ins only")
    if minari_io.dataset_dir(minari_id).exists() and not overwrite:
        raise minari_io.DatasetExistsError(
            f"Minari dataset {minari_id} already exists at "
            f"{minari_io.dataset_dir(minari_id)}; pass --overwrite to regenerate it."
        )
    if spec.is_maze:
        _generate_maze(spec, minari_id, num_steps, seed, ref_episodes, progress, overwrite)
    else:
        _generate_stand_in(spec, minari_id, num_steps, seed, ref_episodes, progress, train_steps,
                           overwrite)
    return minari_id


def _generate_maze(
    spec: EnvSpec, minari_id: str, num_steps: int, seed: int, ref_episodes: int, progress: bool,
    overwrite: bool,
) -> None:
    # Deferred: gymnasium-robotics is only needed to generate and evaluate maze2d.
    from lfjax.datagen import maze2d
    from lfjax.envs import maze2d as maze_env

    env_name = spec.name
    layout = maze_env.get_layout(spec.maze)
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
        "goal_radius": maze_env.GOAL_RADIUS,
        "goal_radius_note": "gymnasium-robotics' PointMaze uses 0.45 and a noisy goal; "
        "this dataset and lfjax's eval env use 0.5 around the exact goal-cell centre (D4RL)",
        "reward_from": "next observation (the eval env's reward for the same step)",
        "start_position_noise": maze_env.START_POSITION_NOISE,
        "start_velocity_std": maze_env.START_VELOCITY_STD,
        "chunk_length": layout.max_episode_steps,
        "ref_episodes": ref_episodes,
        "ref_random_return": refs.random,
        "ref_controller_return": refs.controller,
        # D4RL's reference script replanned only once (maze2d.ControllerPolicy): for
        # comparison with D4RL-normalized scores only, never used for normalization here.
        "ref_controller_return_d4rl_style": refs.controller_d4rl_style,
        "stream_seconds": round(stream_seconds, 2),
        "steps_per_second": round(num_steps / stream_seconds, 1),
        "versions": package_versions("lfjax", "mujoco", "gymnasium", "gymnasium-robotics", "minari"),
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
        algorithm_name="lfjax maze2d waypoint controller (D4RL recipe)",
        code_permalink="lfjax/datagen/maze2d.py",
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
        overwrite=overwrite,
    )


NOT_D4RL = (
    "generated stand-in, NOT D4RL data: normalized scores on it are not comparable with the "
    "paper's or D4RL's"
)


def _generate_stand_in(
    spec: EnvSpec,
    minari_id: str,
    num_steps: int,
    seed: int,
    ref_episodes: int,
    progress: bool,
    train_steps: int | None,
    overwrite: bool,
) -> None:
    from lfjax.datagen import locomotion

    train_steps = locomotion.DEFAULT_TRAIN_STEPS if train_steps is None else int(train_steps)
    if train_steps < 1:
        raise ValueError(f"train_steps must be positive, got {train_steps}")
    env = spec.make_eval_env()
    try:
        # The policy depends on (env, seed, train_steps) only, so the three kinds of one env
        # share it, and their reference returns.
        bar = _progress_bar(train_steps, f"{spec.name} policy (ARS)") if progress else None
        start = time.perf_counter()
        trained, training = locomotion.train_policy(
            env, train_steps, seed=seed, progress=bar.update if bar else None
        )
        train_seconds = time.perf_counter() - start
        if bar:
            bar.close()
        bar = _progress_bar(num_steps, f"{spec.name} data") if progress else None
        start = time.perf_counter()
        episodes = locomotion.collect(
            env, spec.kind, trained, num_steps, seed=seed, progress=bar.update if bar else None
        )
        collect_seconds = time.perf_counter() - start
        if bar:
            bar.close()
        refs = locomotion.reference_returns(env, trained, ref_episodes, seed=seed)
    finally:
        env.close()
    returns = locomotion.episode_returns(episodes)
    settings: dict[str, Any] = {
        "env_name": spec.name,
        "generated_stand_in": True,
        "not_d4rl": NOT_D4RL,
        "recipe_version": locomotion.RECIPE_VERSION,
        "kind": spec.kind,
        "seed": seed,
        "num_steps": num_steps,
        "num_episodes": len(episodes),
        "num_terminations": int(sum(e.terminations[-1] for e in episodes)),
        "episode_return_mean": float(returns.mean()),
        "episode_return_min": float(returns.min()),
        "episode_return_max": float(returns.max()),
        "behaviour_noise_std": locomotion.BEHAVIOUR_NOISE_STD,
        "policy": {
            "algorithm": "ARS V2-t (Mania et al. 2018), linear, tanh output",
            "train_steps": train_steps,
            "iterations": training.iterations,
            "env_steps": training.env_steps,
            "last_rollout_return": training.last_rollout_return,
            "directions": locomotion.ARS_DIRECTIONS,
            "top_directions": locomotion.ARS_TOP_DIRECTIONS,
            "step_size": locomotion.ARS_STEP_SIZE,
            "noise": locomotion.ARS_NOISE,
            "horizon": locomotion.ARS_HORIZON,
            "train_seconds": round(train_seconds, 2),
            **trained.to_dict(),
        },
        "ref_episodes": ref_episodes,
        "ref_random_return": refs.random,
        "ref_trained_return": refs.trained,
        "d4rl_ref_min_score": spec.d4rl_ref_min_score,
        "d4rl_ref_max_score": spec.d4rl_ref_max_score,
        "collect_seconds": round(collect_seconds, 2),
        "steps_per_second": round(num_steps / collect_seconds, 1),
        "versions": package_versions("lfjax", "mujoco", "gymnasium", "minari"),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    kinds = {
        "medium": "the trained policy",
        "medium-replay": "a mixture: each action random with probability falling linearly "
        "from 1 to 0 over the stream, else the trained policy's",
        "medium-expert": "a concatenation: random-policy episodes for the first half, then "
        "the trained policy's",
    }
    minari_io.write_episodes(
        minari_id,
        episodes,
        env_id=spec.eval_env_id,
        algorithm_name="lfjax stand-in: uniform random + linear ARS policy",
        code_permalink="lfjax/datagen/locomotion.py",
        ref_min_score=refs.random,
        ref_max_score=refs.trained,
        num_episodes_average_score=ref_episodes,
        description=(
            f"Generated stand-in for D4RL's {spec.name}, NOT D4RL data: {num_steps} steps in "
            f"{spec.eval_env_id} from {kinds[spec.kind]} (a linear policy trained with ARS for "
            f"{train_steps} env steps, acting with N(0, {locomotion.BEHAVIOUR_NOISE_STD}^2) "
            f"noise). Reference returns: uniform random policy and the noise-free trained "
            f"policy on the same env, {ref_episodes} episodes each."
        ),
        extra_metadata=settings,
        overwrite=overwrite,
    )


def _progress_bar(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", unit_scale=True, mininterval=1.0)
