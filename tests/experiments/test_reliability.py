"""Numerical faults and damaged files: detected, reported, and nothing finished is lost."""

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import pipeline
from lfjax import agent, data
from lfjax.config import RunConfig, quick_preset

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari_rel")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    data.generate_dataset("maze2d-umaze", num_steps=3000, seed=1, ref_episodes=2, progress=False)
    yield data.load_dataset("maze2d-umaze")
    os.environ["MINARI_DATASETS_PATH"] = old


def tiny_config(**overrides) -> RunConfig:
    config = quick_preset("maze2d-umaze")
    return dataclasses.replace(
        config,
        flow=dataclasses.replace(config.flow, num_blocks=2, num_epochs=1, batch_size=256, hidden_dims=(32, 32)),
        agent=dataclasses.replace(config.agent, batch_size=32, hidden_dims=(32, 32)),
        num_updates=60, eval_every=20, eval_episodes=1, num_seeds=3, **overrides,
    )


def test_a_seed_that_goes_non_finite_is_reported_and_the_others_go_on(loaded, tmp_path, monkeypatch):
    config = tiny_config()
    pretrained = pipeline.flow_stage(config, loaded, tmp_path / "flow", progress=False, log=lambda _: None)
    real_make_train = agent.make_train
    calls = {"n": 0}
    good_after_first = {}

    def poisoned_make_train(*args, **kwargs):
        train_chunk = real_make_train(*args, **kwargs)

        def chunk(states, flow_params, n):
            states, metrics = train_chunk(states, flow_params, n)
            calls["n"] += 1
            if calls["n"] == 1:
                good_after_first["actor"] = jax.tree_util.tree_map(lambda x: np.asarray(x[1]), states.actor_params)
            if calls["n"] == 2:  # seed index 1 blows up in the second chunk
                nan = lambda x: x.at[1].set(jnp.nan)
                states = states.replace(actor_params=jax.tree_util.tree_map(nan, states.actor_params))
                metrics = {**metrics, "finite": metrics["finite"].at[1].set(False)}
            return states, metrics

        return chunk

    monkeypatch.setattr(pipeline.agent, "make_train", poisoned_make_train)
    messages = []
    workdir = tmp_path / "run"
    workdir.mkdir()
    results = pipeline.agent_stage(
        config, loaded, pretrained, workdir, resume=False, progress=False,
        log=messages.append, results_base={"config": {**config.to_dict(), "seeds": [0, 1, 2]}},
    )
    assert any("seed 1: non-finite" in m and "20-40" in m for m in messages), messages
    assert results["final"]["failed_seeds"] == [1]
    assert np.isfinite(results["final"]["mean"]) and np.isfinite(results["final"]["scores"]).all()
    # The last checkpoint holds seed 1's last good parameters and the other seeds' newest.
    manager = pipeline.checkpoint_manager(workdir)
    step, states, record = pipeline._restore_checkpoint(manager, workdir, jax.eval_shape(
        lambda: jax.vmap(agent.make_init(config.agent, pretrained.flow, 4))(jax.random.split(jax.random.PRNGKey(0), 3))))
    assert step == 60 and record["failed"] == [False, True, False]
    for kept, good in zip(jax.tree_util.tree_leaves(states.actor_params), jax.tree_util.tree_leaves(good_after_first["actor"])):
        np.testing.assert_array_equal(np.asarray(kept)[1], good)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(states))


def _cli(args, root):
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


TINY = ["--env=maze2d-umaze", "--preset=quick", "--num_seeds=2", "--flow_blocks=2", "--flow_epochs=1",
        "--flow_batch_size=256", "--num_updates=40", "--eval_every=20", "--eval_episodes=1",
        "--batch_size=32", "--noprogress"]


def test_corrupt_checkpoint_and_results_give_clear_errors(loaded, tmp_path):
    root = os.environ["MINARI_DATASETS_PATH"]
    workdir = tmp_path / "w"
    assert _cli([*TINY, f"--workdir={workdir}"], root).returncode == 0
    finished = json.loads((workdir / "results.json").read_text())

    damaged = tmp_path / "damaged"
    shutil.copytree(workdir, damaged)
    for f in (damaged / "checkpoints" / "40" / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(b"\0garbage")
    proc = _cli([*TINY, f"--workdir={damaged}", "--resume"], root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "checkpoint" in proc.stderr and ("corrupt" in proc.stderr or "readable" in proc.stderr), proc.stderr

    (damaged / "config.json").write_text("{trunc")
    proc = _cli([*TINY, f"--workdir={damaged}", "--resume"], root)
    assert proc.returncode == 2 and "corrupt" in proc.stderr and "Traceback" not in proc.stderr

    # An interrupted checkpoint write leaves only orbax's temporary directory: resume ignores
    # it and finishes from the last committed checkpoint with the same results.
    half = tmp_path / "half"
    shutil.copytree(workdir, half)
    shutil.rmtree(half / "checkpoints" / "40")
    (half / "checkpoints" / "40.orbax-checkpoint-tmp-123").mkdir()
    proc = _cli([*TINY, f"--workdir={half}", "--resume"], root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = json.loads((half / "results.json").read_text())
    assert [p["scores"] for p in resumed["curve"]] == [p["scores"] for p in finished["curve"]]


@pytest.mark.parametrize("module", ["experiments.run", "experiments.make_dataset"])
def test_empty_minari_path_is_one_clear_line(module, tmp_path):
    # Minari itself would fail deep inside with "No such file or directory: ''".
    env = {**os.environ, "MINARI_DATASETS_PATH": "", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", module, "--env=maze2d-umaze", f"--workdir={tmp_path / 'w'}"]
        if module == "experiments.run" else [sys.executable, "-m", module, "--env=maze2d-umaze"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2 and "MINARI_DATASETS_PATH is set but empty" in proc.stderr
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


def test_workdir_inside_a_file_is_one_clear_line(minari_root, tmp_path):
    (tmp_path / "a_file").write_text("")
    env = {**os.environ, "MINARI_DATASETS_PATH": str(minari_root), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.run", "--env=maze2d-umaze", "--preset=quick",
         f"--workdir={tmp_path / 'a_file' / 'w'}", "--noprogress"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is a file, not a directory; choose another --workdir" in proc.stderr
