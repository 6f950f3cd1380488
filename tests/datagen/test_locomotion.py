"""Locomotion (D4RL's halfcheetah / hopper / walker2d) on generated stand-ins in the real MuJoCo
envs: the Minari layout real datasets have, the loader path real users hit, and
`python -m experiments.run --env=hopper-medium` end to end."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lfjax.data import (
    MissingDatasetError,
    SubstituteDatasetWarning,
    get_env_spec,
    load_dataset,
    minari_io,
)
from lfjax.datagen import generate_dataset, locomotion

REPO = pathlib.Path(__file__).resolve().parents[2]
NUM_STEPS = 1500
# A couple of ARS iterations: enough to exercise training, small enough for a test.
SMALL = dict(num_steps=NUM_STEPS, ref_episodes=2, train_steps=2000, progress=False)
# One name per env, one per kind.
NAMES = ("hopper-medium", "halfcheetah-medium-expert", "walker2d-medium-replay")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """This module's own Minari data path, holding one small stand-in per env."""
    path = tmp_path_factory.mktemp("minari_locomotion")
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    for name in NAMES:
        generate_dataset(name, seed=0, **SMALL)
    yield path
    os.environ["MINARI_DATASETS_PATH"] = previous


# SPEC.md 3 and 5: flow epochs per kind, D4RL's reference returns per env.
D4RL_REFS = {"halfcheetah": (-280.178953, 12135.0), "hopper": (-20.272305, 3234.3),
             "walker2d": (1.629008, 4592.3)}
SHAPES = {"halfcheetah": ("HalfCheetah-v5", 17, 6), "hopper": ("Hopper-v5", 11, 3),
          "walker2d": ("Walker2d-v5", 17, 6)}


@pytest.mark.parametrize("env", SHAPES)
def test_registry_maps_the_nine_datasets(env):
    medium, expert = f"mujoco/{env}/medium-v0", f"mujoco/{env}/expert-v0"
    for kind, ids, epochs in (("medium", (medium,), 100),
                              ("medium-replay", (f"lfjax/{env}-medium-replay-v0",), 350),
                              ("medium-expert", (medium, expert), 50)):
        spec = get_env_spec(f"{env}-{kind}")
        assert (spec.kind, spec.minari_ids, spec.flow_epochs) == (kind, ids, epochs)
        assert (spec.eval_env_id, spec.obs_dim, spec.action_dim) == SHAPES[env]
        assert spec.max_episode_steps == 1000
        assert (spec.ref_min_score, spec.ref_max_score) == D4RL_REFS[env]
        assert spec.generated_by is None  # run.py must not generate a stand-in on its own
        assert spec.stand_in_id == f"lfjax-generated/{env}-{kind}-v0"


def _episodes(minari_id):
    import minari

    dataset = minari.MinariDataset(minari_io.dataset_dir(minari_id) / "data")
    return list(dataset.iterate_episodes())


@pytest.mark.parametrize("name", NAMES)
def test_stand_in_has_the_layout_of_minari_mujoco_datasets(root, name):
    spec = get_env_spec(name)
    assert spec.stand_in_id == f"lfjax-generated/{name}-v0"
    # Never written under the real id: a stand-in must not pass for D4RL data.
    assert not any(minari_io.dataset_exists(i) for i in spec.minari_ids)
    metadata = minari_io.read_metadata(spec.stand_in_id)
    assert json.loads(metadata["env_spec"])["id"] == spec.eval_env_id
    assert json.loads(metadata["env_spec"])["max_episode_steps"] == 1000
    assert json.loads(metadata["eval_env_spec"])["id"] == spec.eval_env_id
    obs_space = json.loads(metadata["observation_space"])
    action_space = json.loads(metadata["action_space"])
    assert (obs_space["type"], obs_space["dtype"], obs_space["shape"]) == (
        "Box", "float64", [spec.obs_dim])
    assert (action_space["type"], action_space["dtype"], action_space["shape"]) == (
        "Box", "float32", [spec.action_dim])
    ours = metadata["lfjax"]
    assert ours["complete"] and ours["generated_stand_in"] and "NOT D4RL" in ours["not_d4rl"]
    assert metadata["ref_min_score"] == ours["ref_random_return"]
    assert metadata["ref_max_score"] == ours["ref_trained_return"]
    assert metadata["total_steps"] == NUM_STEPS

    episodes = _episodes(spec.stand_in_id)
    assert sum(len(e.rewards) for e in episodes) == NUM_STEPS
    for e in episodes:
        assert e.observations.shape == (len(e.rewards) + 1, spec.obs_dim)
        assert e.actions.shape == (len(e.rewards), spec.action_dim)
        assert np.all(np.abs(e.actions) <= 1.0)
        # Every episode ends once, by exactly one of the two, on its last step.
        assert not (e.terminations[:-1].any() or e.truncations[:-1].any())
        assert e.terminations[-1] != e.truncations[-1]
        assert len(e.rewards) <= 1000


def test_hopper_loads_with_three_dim_actions_and_a_warning(root):
    expected = "mujoco/hopper/medium-v0 not found.*NOT D4RL"
    with pytest.warns(SubstituteDatasetWarning, match=expected):
        loaded = load_dataset("hopper-medium")
    assert loaded.minari_id == "lfjax-generated/hopper-medium-v0"
    t = loaded.transitions
    assert t.observations.shape == t.next_observations.shape == (NUM_STEPS, 11)
    assert t.actions.shape == (NUM_STEPS, 3)
    assert loaded.metadata["not_d4rl"]
    metadata = minari_io.read_metadata(loaded.minari_id)
    assert (loaded.ref_min_score, loaded.ref_max_score) == (
        metadata["ref_min_score"], metadata["ref_max_score"])
    # Hopper's zero action already stands longer than random flailing.
    assert loaded.ref_max_score > loaded.ref_min_score


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.filterwarnings("ignore::lfjax.data.SubstituteDatasetWarning")
def test_terminals_come_from_terminations_only(root, name):
    spec = get_env_spec(name)
    loaded = load_dataset(name)
    episodes = _episodes(spec.stand_in_id)
    terminals = np.asarray(loaded.transitions.terminals)
    np.testing.assert_array_equal(terminals, np.concatenate([e.terminations for e in episodes]))
    ends = np.cumsum([len(e.rewards) for e in episodes]) - 1
    truncated = np.array([e.truncations[-1] for e in episodes])
    assert truncated.any()  # the time limit or the end of the stream
    assert not terminals[ends[truncated]].any()
    # s' of an episode's last step is its own final observation, not the next reset.
    next_obs = np.asarray(loaded.transitions.next_observations)
    for end, e in zip(ends, episodes):
        np.testing.assert_allclose(next_obs[end], e.observations[-1], rtol=1e-6)
    if name.startswith("halfcheetah"):
        # Never terminates: one 1000-step time-limit episode, then the cut at NUM_STEPS.
        assert terminals.sum() == 0 and [len(e.rewards) for e in episodes] == [1000, 500]
    else:
        assert terminals.sum() >= 1  # hopper and walker fall


def test_medium_expert_is_random_then_trained(root):
    spec = get_env_spec("halfcheetah-medium-expert")
    policy = minari_io.read_metadata(spec.stand_in_id)["lfjax"]["policy"]
    trained = locomotion.LinearPolicy(
        *(np.asarray(policy[k]) for k in ("weights", "obs_mean", "obs_std")))
    first, second = _episodes(spec.stand_in_id)

    def residual_std(e):
        return np.std(e.actions - np.stack([trained(o) for o in e.observations[:-1]]))

    assert np.std(first.actions) > 0.5  # uniform on [-1, 1]: 0.58
    assert 0.05 < residual_std(second) < 0.12  # the trained policy + N(0, 0.1^2), clipped


def test_real_minari_datasets_win_and_medium_expert_concatenates(root, tmp_path, monkeypatch):
    """The two Minari ids of hopper-medium-expert, laid out as `minari download` leaves them
    (a generated dataset under the real ids, our metadata block removed), next to a stand-in."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    source = root / "lfjax-generated" / "hopper-medium-v0"
    shutil.copytree(source, tmp_path / "lfjax-generated" / "hopper-medium-expert-v0")
    for real in ("mujoco/hopper/medium-v0", "mujoco/hopper/expert-v0"):
        shutil.copytree(source, tmp_path / real)
        path = tmp_path / real / "data" / "metadata.json"
        metadata = json.loads(path.read_text())
        del metadata["lfjax"]
        metadata["dataset_id"] = real
        path.write_text(json.dumps(metadata))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SubstituteDatasetWarning)
        loaded = load_dataset("hopper-medium-expert")
    assert loaded.minari_id == "mujoco/hopper/medium-v0 + mujoco/hopper/expert-v0"
    assert loaded.transitions.actions.shape == (2 * NUM_STEPS, 3)
    assert loaded.metadata == {}
    assert loaded.spec.flow_epochs == 50


def test_missing_dataset_is_one_line_with_both_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(MissingDatasetError) as info:
        load_dataset("walker2d-medium-expert")
    message = str(info.value)
    assert "\n" not in message
    assert "minari download mujoco/walker2d/medium-v0 mujoco/walker2d/expert-v0" in message
    assert "python -m experiments.make_dataset --env=walker2d-medium-expert" in message
    assert "NOT D4RL" in message and str(tmp_path) in message


def _subprocess(module, args, root):
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root), "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )


def test_run_without_the_dataset_is_one_clear_error(tmp_path):
    workdir = tmp_path / "w"
    proc = _subprocess("experiments.run", ["--env=hopper-medium", f"--workdir={workdir}",
                                           "--noprogress"], tmp_path / "empty")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "minari download mujoco/hopper/medium-v0" in errors[0]
    assert "python -m experiments.make_dataset --env=hopper-medium" in errors[0]
    assert not workdir.exists()


TINY_RUN = [
    "--env=hopper-medium", "--preset=quick", "--num_seeds=2", "--flow_blocks=2",
    "--flow_epochs=1", "--flow_batch_size=256", "--num_updates=100", "--eval_every=50",
    "--eval_episodes=1", "--final_eval_episodes=1", "--batch_size=64", "--noprogress",
]


def test_make_dataset_then_run_hopper_end_to_end(tmp_path):
    from lfjax import agent, evaluation
    from lfjax.checkpoints import load_pretrained_flow, restore_tree
    from lfjax.configs import RunConfig

    root, workdir = tmp_path / "minari", tmp_path / "run"
    made = _subprocess("experiments.make_dataset", [
        "--env=hopper-medium", "--num_steps=2000", "--ref_episodes=2", "--train_steps=2000",
        "--seed=1"], root)
    assert made.returncode == 0, made.stderr[-2000:]
    assert "wrote lfjax-generated/hopper-medium-v0" in made.stdout and "NOT D4RL" in made.stdout

    proc = _subprocess("experiments.run", [*TINY_RUN, f"--workdir={workdir}"], root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NOT D4RL" in proc.stderr  # the loader's warning reaches the user
    results = json.loads((workdir / "results.json").read_text())
    assert results["status"] == "finished" and results["updates"] == 100
    assert [p["updates"] for p in results["curve"]] == [50, 100]
    assert np.all(np.isfinite(results["final"]["scores"])) and len(results["final"]["scores"]) == 2
    dataset = results["dataset"]
    assert dataset["minari_id"] == "lfjax-generated/hopper-medium-v0"
    assert dataset["generation"]["not_d4rl"] and dataset["num_transitions"] == 2000
    os.environ["MINARI_DATASETS_PATH"], previous = str(root), os.environ["MINARI_DATASETS_PATH"]
    try:
        metadata = minari_io.read_metadata(dataset["minari_id"])
    finally:
        os.environ["MINARI_DATASETS_PATH"] = previous
    assert (dataset["ref_min_score"], dataset["ref_max_score"]) == (
        metadata["ref_min_score"], metadata["ref_max_score"])

    # The trained actors, restored from the last checkpoint, act in Hopper-v5 through the
    # flow's 4-dim (zero-padded) latent space with 3-dim actions.
    config = RunConfig.from_dict(json.loads((workdir / "config.json").read_text()))
    pretrained = load_pretrained_flow(workdir / "flow")
    flow = pretrained.flow
    assert (flow.action_dim, flow.latent_dim) == (3, 4)
    init = agent.make_init(config.agent, flow, 11)
    like = jax.vmap(init)(jnp.stack([jax.random.PRNGKey(s) for s in range(2)]))
    states = restore_tree(workdir / "checkpoints" / "100" / "state", like)
    # One flow shared by both seeds (the quick preset) or one each: broadcast as the run does.
    params = jax.tree_util.tree_map(
        lambda x: jnp.broadcast_to(x, (2, *x.shape[1:])), pretrained.params)
    frozen = jax.vmap(flow.freeze)(params)
    seen = []

    class Recorder(gymnasium.Wrapper):
        def step(self, action):
            seen.append(np.array(action))
            return super().step(action)

    returns = evaluation.evaluate(
        agent.make_act(config.agent, flow), states.actor_params, frozen,
        (pretrained.state_mean, pretrained.state_std),
        lambda i: Recorder(get_env_spec("hopper-medium").make_eval_env()), num_episodes=1,
    )
    assert returns.shape == (2, 1) and np.all(np.isfinite(returns))
    assert seen and all(a.shape == (3,) and np.all(np.abs(a) <= 1.0) for a in seen)
