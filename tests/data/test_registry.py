import numpy as np
import pytest

from lfjax.data import REGISTRY, UnknownEnvError, env_names, get_env_spec

PAPER_NAMES = [
    "maze2d-umaze", "maze2d-medium", "maze2d-large",
    *[f"{env}-{kind}" for env in ("halfcheetah", "hopper", "walker2d")
      for kind in ("medium", "medium-replay", "medium-expert")],
]


def test_registry_has_the_paper_names():
    assert sorted(env_names()) == sorted(PAPER_NAMES)


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownEnvError) as info:
        get_env_spec("maze2d-huge")
    assert isinstance(info.value, ValueError)
    for name in PAPER_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "name, kind, epochs, ids",
    [
        ("maze2d-umaze", "maze", 100, ("lfjax/maze2d-umaze-v1",)),
        ("hopper-medium", "medium", 100, ("mujoco/hopper/medium-v0",)),
        ("walker2d-medium-replay", "medium-replay", 350, ("lfjax/walker2d-medium-replay-v0",)),
        ("halfcheetah-medium-expert", "medium-expert", 50,
         ("mujoco/halfcheetah/medium-v0", "mujoco/halfcheetah/expert-v0")),
    ],
)
def test_entries(name, kind, epochs, ids):
    spec = get_env_spec(name)
    assert (spec.kind, spec.flow_epochs, spec.minari_ids) == (kind, epochs, ids)
    assert spec.minari_id == " + ".join(ids)


def test_maze_entries_use_own_reference_returns_not_d4rl():
    for maze, steps in (("umaze", 300), ("medium", 600), ("large", 800)):
        spec = get_env_spec(f"maze2d-{maze}")
        assert spec.max_episode_steps == steps
        assert spec.generated_by == f"python -m experiments.make_dataset --env=maze2d-{maze}"
        assert spec.ref_max_score > spec.ref_min_score > spec.d4rl_ref_min_score
    assert get_env_spec("hopper-medium").ref_min_score == pytest.approx(-20.272305)


@pytest.mark.parametrize("name", PAPER_NAMES)
def test_eval_env_spaces_match_spec(name):
    spec = get_env_spec(name)
    env = spec.make_eval_env(seed=0)
    assert env.observation_space.shape == (spec.obs_dim,)
    assert env.action_space.shape == (spec.action_dim,)
    np.testing.assert_array_equal(env.action_space.low, -spec.action_bound)
    np.testing.assert_array_equal(env.action_space.high, spec.action_bound)
    assert env.spec.max_episode_steps == spec.max_episode_steps
    env.close()


@pytest.mark.parametrize("name", ["maze2d-medium", "hopper-medium"])
def test_eval_env_deterministic_given_seed(name):
    spec = REGISTRY[name]
    rollouts = []
    for _ in range(2):
        env = spec.make_eval_env(seed=7)
        obs, _ = env.reset()  # Unseeded: must continue the seeded generator.
        trace = [obs]
        for _ in range(20):
            obs, *_ = env.step(env.action_space.sample())
            trace.append(obs)
        rollouts.append(np.array(trace))
        env.close()
    np.testing.assert_array_equal(rollouts[0], rollouts[1])
