"""The environments of the paper: the names users type -> dataset, evaluation env, settings."""

from __future__ import annotations

import dataclasses

import gymnasium

KINDS = ("maze", "medium", "medium-replay", "medium-expert")

# Version of the generated maze2d datasets' Minari ids (lfjax/maze2d-<maze>-v<N>); bumped with
# lfjax.datagen.maze2d.RECIPE_VERSION whenever the recipe changes the data, so that an older
# dataset is never loaded in place of the current one (loading.outdated_datasets finds them).
MAZE2D_DATASET_VERSION = 1

# Flow-pretraining epochs per dataset kind (SPEC.md 3).
FLOW_EPOCHS = {"maze": 100, "medium": 100, "medium-replay": 350, "medium-expert": 50}


class UnknownEnvError(ValueError):
    """An environment name that is not in the registry; the message lists the known ones."""


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Everything lfjax needs to know about one dataset + evaluation environment.

    Attributes:
        name: the name users type, e.g. "maze2d-umaze", "halfcheetah-medium-replay".
        kind: "maze" | "medium" | "medium-replay" | "medium-expert".
        minari_ids: the Minari datasets that make up the dataset, concatenated in this order
            (two for medium-expert: D4RL's medium-expert is medium + expert). For maze2d, our
            generated dataset (see generated_by).
        flow_epochs: flow-pretraining epochs (SPEC.md 3).
        max_episode_steps: evaluation episode length (truncation, not termination).
        ref_min_score, ref_max_score: fallback reference returns (random, expert) for the D4RL
            normalized score; a dataset's own metadata values win when present. maze2d: our
            measured returns on our evaluation env (D4RL's numbers do not apply to it);
            locomotion: D4RL's (measured on the v2 mujoco-py envs).
        d4rl_ref_min_score, d4rl_ref_max_score: D4RL's published numbers, for the record.
        obs_dim, action_dim: flat observation and action sizes.
        action_bound: the evaluation env's action space is [-action_bound, action_bound]^A
            (1 for every env of the paper; datasets are checked against it when loaded).
        eval_env_id: the gymnasium id make_eval_env builds.
        maze: "umaze" | "medium" | "large" for maze2d, else None.
        default_num_steps: size make_dataset generates by default: maze2d, D4RL's sizes;
            locomotion, the generated stand-in's size.
        generated_by: the command that creates the dataset itself locally (maze2d), else None.
        stand_in_id: locomotion only: the Minari id of a generated stand-in (NOT D4RL data,
            lfjax.datagen.locomotion) loaded when the real dataset is missing.
    """

    name: str
    kind: str
    minari_ids: tuple[str, ...]
    flow_epochs: int
    max_episode_steps: int
    ref_min_score: float
    ref_max_score: float
    d4rl_ref_min_score: float
    d4rl_ref_max_score: float
    obs_dim: int
    action_dim: int
    eval_env_id: str
    maze: str | None = None
    default_num_steps: int | None = None
    action_bound: float = 1.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def minari_id(self) -> str:
        """The Minari id (for medium-expert, "medium-id + expert-id")."""
        return " + ".join(self.minari_ids)

    @property
    def is_maze(self) -> bool:
        return self.maze is not None

    @property
    def generated_by(self) -> str | None:
        """The shell command that generates this dataset, or None when it must be obtained."""
        if not self.is_maze:
            return None
        return self.make_dataset_command

    @property
    def make_dataset_command(self) -> str:
        """The shell command that generates this name's dataset (maze2d) or its stand-in."""
        return f"python -m experiments.make_dataset --env={self.name}"

    @property
    def d4rl_hdf5_name(self) -> str | None:
        """medium-replay only: D4RL's file that experiments.convert_d4rl turns into this name's
        dataset, e.g. "hopper_medium_replay-v2.hdf5"; None for the others (Minari publishes
        medium and expert, maze2d is generated here)."""
        if self.kind != "medium-replay":
            return None
        return f"{self.name.replace('-', '_')}-v2.hdf5"

    @property
    def convert_command(self) -> str | None:
        """medium-replay only: the shell command that converts D4RL's hdf5 into this name's
        dataset (the path is the user's to fill in); None for the others."""
        if self.d4rl_hdf5_name is None:
            return None
        return (
            f"python -m experiments.convert_d4rl --env={self.name} "
            f"--hdf5=<path to D4RL's {self.d4rl_hdf5_name}>"
        )

    @property
    def stand_in_id(self) -> str | None:
        """Minari id of the generated stand-in of a locomotion dataset; None for maze2d (whose
        real dataset is generated here)."""
        if self.is_maze:
            return None
        return f"lfjax-generated/{self.name}-v0"

    def make_eval_env(self, seed: int | None = None) -> gymnasium.Env:
        """A fresh evaluation env: flat Box observation [obs_dim] float64, reward equal to the
        dataset's reward, truncated at max_episode_steps. With a seed, its first reset and its
        action space are seeded, so an unseeded reset afterwards (e.g. SyncVectorEnv's
        autoreset) is reproducible."""
        if self.is_maze:
            # Imported here: it pulls in gymnasium-robotics, which the locomotion envs don't need.
            from lfjax.envs import maze2d

            return maze2d.make_eval_env(self.maze, seed=seed)
        env = gymnasium.make(self.eval_env_id, max_episode_steps=self.max_episode_steps)
        if seed is not None:
            env.reset(seed=seed)
            env.action_space.seed(seed)
        return env


def _maze(maze: str, max_steps: int, num_steps: int, ref: tuple[float, float],
          d4rl_ref: tuple[float, float]) -> EnvSpec:
    return EnvSpec(
        name=f"maze2d-{maze}",
        kind="maze",
        minari_ids=(f"lfjax/maze2d-{maze}-v{MAZE2D_DATASET_VERSION}",),
        flow_epochs=FLOW_EPOCHS["maze"],
        max_episode_steps=max_steps,
        ref_min_score=ref[0],
        ref_max_score=ref[1],
        d4rl_ref_min_score=d4rl_ref[0],
        d4rl_ref_max_score=d4rl_ref[1],
        obs_dim=4,
        action_dim=2,
        eval_env_id=f"lfjax/maze2d-{maze}-v0",
        maze=maze,
        default_num_steps=num_steps,
    )


# Default size of a generated locomotion stand-in: a tenth of D4RL's medium datasets.
STAND_IN_NUM_STEPS = 100_000

# Minari publishes simple / medium / expert datasets for the gymnasium v5 locomotion envs
# (mujoco/<env>/<level>-v0); it has no medium-replay. We expect one under lfjax/'s namespace,
# converted from D4RL's hdf5 by the user (experiments.convert_d4rl).
_LOCOMOTION = {
    # name: (gymnasium id, Minari env name, obs_dim, action_dim, D4RL (random, expert))
    "halfcheetah": ("HalfCheetah-v5", "halfcheetah", 17, 6, (-280.178953, 12135.0)),
    "hopper": ("Hopper-v5", "hopper", 11, 3, (-20.272305, 3234.3)),
    "walker2d": ("Walker2d-v5", "walker2d", 17, 6, (1.629008, 4592.3)),
}


def _locomotion(env: str, kind: str) -> EnvSpec:
    gym_id, minari_env, obs_dim, action_dim, d4rl_ref = _LOCOMOTION[env]
    minari_ids = {
        "medium": (f"mujoco/{minari_env}/medium-v0",),
        "medium-expert": (f"mujoco/{minari_env}/medium-v0", f"mujoco/{minari_env}/expert-v0"),
        "medium-replay": (f"lfjax/{env}-medium-replay-v0",),
    }[kind]
    return EnvSpec(
        name=f"{env}-{kind}",
        kind=kind,
        minari_ids=minari_ids,
        flow_epochs=FLOW_EPOCHS[kind],
        max_episode_steps=1000,
        ref_min_score=d4rl_ref[0],
        ref_max_score=d4rl_ref[1],
        d4rl_ref_min_score=d4rl_ref[0],
        d4rl_ref_max_score=d4rl_ref[1],
        obs_dim=obs_dim,
        action_dim=action_dim,
        eval_env_id=gym_id,
        default_num_steps=STAND_IN_NUM_STEPS,
    )


# maze2d reference returns: measured 2026-11-26 with lfjax.datagen.maze2d.reference_returns
# (100 episodes each, seed 0) on our evaluation env; BUILD_NOTES.md has the table.
REGISTRY: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in [
        _maze("umaze", 300, 1_000_000, (27.43, 223.48), (23.85, 161.86)),
        _maze("medium", 600, 2_000_000, (27.31, 420.44), (13.13, 277.39)),
        _maze("large", 800, 4_000_000, (16.76, 552.16), (6.7, 273.99)),
    ]
    + [
        _locomotion(env, kind)
        for env in _LOCOMOTION
        for kind in ("medium", "medium-replay", "medium-expert")
    ]
}


def env_names() -> tuple[str, ...]:
    """All registered names, in registry order."""
    return tuple(REGISTRY)


def get_env_spec(name: str) -> EnvSpec:
    """name (e.g. "maze2d-umaze") -> its EnvSpec; UnknownEnvError listing the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownEnvError(
            f"unknown environment {name!r}; known: {', '.join(REGISTRY)}"
        ) from None
