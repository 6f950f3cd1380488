"""Seeds split over devices: same numbers as on one device, outputs stay split, data once per device.

Several devices need ``--xla_force_host_platform_device_count`` before JAX starts, and this
pytest process started JAX long ago, so the multi-device checks run this file as a script in a
subprocess with 4 CPU devices (``_worker`` below) and read back what it measured.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NUM_DEVICES = 4
NUM_SEEDS = 4
COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")


# ----- one device, in this process ------------------------------------------------------------


def test_one_device_only_commits():
    import jax

    from lfjax import sharding

    if len(jax.devices()) != 1:
        pytest.skip("this process has several devices")
    mesh = sharding.seed_mesh(3)
    assert mesh.size == 1 and mesh.axis_names == (sharding.SEED_AXIS,)
    assert sharding.mesh_note(3, mesh) is None
    tree = {"w": jax.numpy.ones((3, 2))}
    assert not tree["w"].committed
    for placed in (sharding.shard_seeds(tree, mesh), sharding.replicate(tree, mesh)):
        # Committed, so the first training call and the ones after it share one compilation.
        assert placed["w"].committed and placed["w"].devices() == {jax.devices()[0]}
        np.testing.assert_array_equal(placed["w"], tree["w"])
    np.testing.assert_array_equal(sharding.to_host(tree)["w"], np.ones((3, 2)))


def test_addressable_seeds_and_gather_in_one_process():
    import jax

    from lfjax import sharding

    tree = {"w": jax.numpy.arange(6.0).reshape(3, 2)}
    indices, local = sharding.addressable_seeds(tree)
    # One process holds every seed: nothing is copied.
    assert indices.tolist() == [0, 1, 2] and local is tree
    scores = np.array([0.1, 1e-12 + 2.0, 3.0], np.float64)
    np.testing.assert_array_equal(sharding.gather_seeds(scores, indices, 3), scores)
    with pytest.raises(ValueError, match="exactly one process"):
        sharding.gather_seeds(scores[:2], [0, 1], 3)


def test_seed_mesh_rejects_no_seeds():
    from lfjax import sharding

    with pytest.raises(ValueError, match="positive"):
        sharding.seed_mesh(0)


# ----- 4 CPU devices, in a subprocess ---------------------------------------------------------


def _worker(out_dir: pathlib.Path) -> None:
    """Trains a tiny flow and a tiny AWAC for 4 seeds on 1, 2 and 4 devices; writes what it saw."""
    import jax
    import jax.numpy as jnp

    from lfjax import agent, pretraining, sharding
    from lfjax.configs import FlowTrainConfig
    from lfjax.data import Transitions
    from lfjax.pretraining import pretrain

    assert len(jax.devices()) == NUM_DEVICES, jax.devices()
    report = {}
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    rows = 2048
    dataset = Transitions(
        observations=jax.random.normal(keys[0], (rows, 3)),
        actions=jnp.tanh(jax.random.normal(keys[1], (rows, 2))),
        rewards=jax.random.uniform(keys[2], (rows,)),
        next_observations=jax.random.normal(keys[3], (rows, 3)),
        terminals=(jax.random.uniform(keys[4], (rows,)) < 0.1).astype(jnp.float32),
    )

    flow_config = FlowTrainConfig(num_blocks=2, hidden_dims=(16, 16), batch_size=128)
    flow = flow_config.make_flow(2, 3)
    flow_data = pretraining.make_flow_data(keys[5], dataset.actions, dataset.observations)
    num_train = int(flow_data.train_indices.shape[0])

    def stacked_init(init, keys):
        # One seed's init compiled, called per key: compiles twice as fast as its vmap here.
        init = jax.jit(init)
        return jax.tree.map(lambda *x: jnp.stack(x), *[init(k) for k in keys])

    # make_train's program without its donation: the same states go in for every mesh below.
    flow_epoch = jax.jit(
        jax.vmap(pretraining.make_epoch(flow_config, flow, num_train), in_axes=(0, 0, None))
    )
    flow_states = stacked_init(lambda k: pretraining.init(flow_config, flow, k, flow_data),
                               jax.random.split(keys[6], NUM_SEEDS))
    epoch_keys = jax.random.split(keys[7], NUM_SEEDS)

    awac_config = agent.AWACConfig(batch_size=32, hidden_dims=(16, 16))
    frozen = jax.jit(jax.vmap(flow.freeze))(flow_states.params)
    agent_states = stacked_init(agent.make_init(awac_config, flow, 3), epoch_keys)
    run_seeds = agent.make_train(awac_config, flow)

    def leaves(tree):
        return [np.asarray(x) for x in jax.tree.leaves(sharding.to_host(tree))]

    runs = {}
    for num_devices in (1, 2, 4):
        mesh = sharding.seed_mesh(NUM_SEEDS, jax.devices()[:num_devices])
        if num_devices == 1:  # the reference: everything on device 0, nothing placed
            f_args = (flow_states, epoch_keys, flow_data)
            a_args = (agent_states, frozen, dataset)
        else:
            f_args = (*sharding.shard_seeds((flow_states, epoch_keys), mesh),
                      sharding.replicate(flow_data, mesh))
            a_args = (*sharding.shard_seeds((agent_states, frozen), mesh),
                      sharding.replicate(dataset, mesh))
        # Compiled once, ahead of time, so the HLO inspected is the program that ran.
        flow_compiled = flow_epoch.lower(*f_args).compile()
        awac_compiled = run_seeds.lower(*a_args, num_updates=5).compile()
        flow_out, awac_out = flow_compiled(*f_args), awac_compiled(*a_args)
        runs[num_devices] = (leaves(flow_out), leaves(awac_out))
        if num_devices > 1:
            hlo = flow_compiled.as_text() + awac_compiled.as_text()
            data_shards = [s.data.nbytes for s in a_args[2].observations.addressable_shards]
            report[f"devices_{num_devices}"] = {
                "outputs_split": sharding.is_split_over_seeds((flow_out, awac_out), mesh),
                "collectives": [c for c in COLLECTIVES if c in hlo],
                "dataset_shard_bytes": data_shards,
                "seed_shard_rows": [s.data.shape[0] for s in
                                    jax.tree.leaves(a_args[0])[0].addressable_shards],
            }

    def compare(a, b):
        return {
            "bit_identical": all(np.array_equal(x, y) for x, y in zip(a, b)),
            "max_abs_diff": max(float(np.max(np.abs(x.astype(np.float64) - y))) if x.size else 0.0
                                for x, y in zip(a, b)),
        }

    for num_devices in (2, 4):
        report[f"devices_{num_devices}"]["flow"] = compare(runs[1][0], runs[num_devices][0])
        report[f"devices_{num_devices}"]["awac"] = compare(runs[1][1], runs[num_devices][1])

    report["mesh_sizes"] = {n: sharding.seed_mesh(n).size for n in (1, 2, 3, 4, 5, 6, 8)}
    report["note_3_seeds"] = sharding.mesh_note(3, sharding.seed_mesh(3))
    try:
        sharding.shard_seeds({"w": jnp.ones((3, 2))}, sharding.seed_mesh(4))
    except ValueError as e:
        report["uneven_error"] = str(e)

    # lfjax.pretraining.pretrain places seeds over all 4 devices on its own.
    out = pretrain(flow_config, dataset.actions, dataset.observations, num_epochs=2,
                   num_seeds=NUM_SEEDS, seed=1, progress=False, log=lambda _: None)
    params = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(out.best_params))}
    np.savez(out_dir / "pretrain.npz", best_val_nll=out.best_val_nll, **params)
    (out_dir / "report.json").write_text(json.dumps(report))


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("sharding")
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={NUM_DEVICES}",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, __file__, str(out_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out_dir / "report.json").read_text()), out_dir


@pytest.mark.parametrize("num_devices", [2, 4])
@pytest.mark.parametrize("stage", ["flow", "awac"])
def test_sharded_training_matches_one_device(four_devices, num_devices, stage):
    # Not bit-identical: XLA batches the per-seed matmuls differently for 4 seeds on one
    # device than for 1-2 seeds per device, which changes float32 rounding.
    result = four_devices[0][f"devices_{num_devices}"][stage]
    assert result["max_abs_diff"] < 1e-5, result


@pytest.mark.parametrize("num_devices", [2, 4])
def test_outputs_stay_split_and_no_data_crosses_devices(four_devices, num_devices):
    report = four_devices[0][f"devices_{num_devices}"]
    assert report["outputs_split"]
    assert report["collectives"] == []  # each device trains its own seeds alone
    assert report["seed_shard_rows"] == [NUM_SEEDS // num_devices] * num_devices


def test_dataset_is_stored_once_per_device(four_devices):
    report = four_devices[0]
    full = 2048 * 3 * 4  # observations [2048, 3] float32
    assert report["devices_2"]["dataset_shard_bytes"] == [full] * 2
    assert report["devices_4"]["dataset_shard_bytes"] == [full] * 4


def test_seed_counts_that_do_not_divide_use_fewer_devices(four_devices):
    report = four_devices[0]
    assert report["mesh_sizes"] == {"1": 1, "2": 2, "3": 3, "4": 4, "5": 1, "6": 3, "8": 4}
    assert "3 seeds do not split evenly over 4 devices" in report["note_3_seeds"]
    assert "multiple of 4" in report["uneven_error"]


def test_pretrain_on_four_devices_matches_one_device(four_devices):
    import jax
    import jax.numpy as jnp

    from lfjax.configs import FlowTrainConfig
    from lfjax.pretraining import pretrain

    keys = jax.random.split(jax.random.PRNGKey(0), 8)  # the worker's data, drawn the same way
    actions = jnp.tanh(jax.random.normal(keys[1], (2048, 2)))
    states = jax.random.normal(keys[0], (2048, 3))
    config = FlowTrainConfig(num_blocks=2, hidden_dims=(16, 16), batch_size=128)
    out = pretrain(config, actions, states, num_epochs=2, num_seeds=NUM_SEEDS, seed=1,
                   progress=False, log=lambda _: None)
    sharded = np.load(four_devices[1] / "pretrain.npz")
    np.testing.assert_allclose(sharded["best_val_nll"], out.best_val_nll, rtol=1e-5, atol=1e-5)
    for i, leaf in enumerate(jax.tree.leaves(out.best_params)):
        np.testing.assert_allclose(sharded[f"leaf_{i}"], leaf, rtol=1e-4, atol=1e-5)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    _worker(pathlib.Path(sys.argv[1]))
