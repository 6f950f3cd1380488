"""Flow pretraining: pure pieces, best-validation selection, and learning a known density."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lfjax import pretraining
from lfjax.checkpoints import CheckpointError, FlowProgress, load_pretrained_flow, save_pretrained_flow
from lfjax.configs import FlowTrainConfig
from lfjax.pretraining import FlowDivergedError, PretrainingStopped, pretrain

SIGMA = 0.3


def synthetic(key, n, state_dim=2):
    """a = tanh(W s + b + sigma * eps): a state-conditioned density with a known log-likelihood."""
    k1, k2 = jax.random.split(key)
    states = jax.random.normal(k1, (n, state_dim))
    w = jnp.array([[0.8, -0.4], [0.3, 0.6]])[:, :state_dim]
    mean = states @ w.T + jnp.array([0.2, -0.1])
    u = mean + SIGMA * jax.random.normal(k2, mean.shape)
    actions = jnp.tanh(u)
    gauss = -0.5 * jnp.sum(((u - mean) / SIGMA) ** 2 + jnp.log(2 * jnp.pi * SIGMA**2), -1)
    log_prob = gauss - jnp.sum(jnp.log1p(-actions**2), -1)
    return actions, states, log_prob


SMALL = FlowTrainConfig(num_blocks=4, hidden_dims=(64, 64), batch_size=256)


def test_learns_a_known_density():
    actions, states, log_prob = synthetic(jax.random.PRNGKey(0), 12_000)
    out = pretrain(SMALL, actions, states, num_epochs=25, num_seeds=1, seed=0, progress=False, log=lambda _: None)
    true_nll = -float(log_prob.mean())
    best = float(out.best_val_nll[0])
    # Maximum likelihood cannot beat the true density by much on held-out data, and a
    # flow of this size should get within 0.1 nats of it.
    assert true_nll - 0.05 < best < true_nll + 0.1, (best, true_nll)
    first_val = out.history[0]["val_nll"][0]
    assert best < first_val - 0.3


def test_best_params_are_the_lowest_validation_epoch():
    actions, states, _ = synthetic(jax.random.PRNGKey(1), 3000)
    out = pretrain(SMALL, actions, states, num_epochs=4, num_seeds=2, seed=3, progress=False, log=lambda _: None)
    val = np.array([h["val_nll"] for h in out.history])  # [epochs, seeds]
    np.testing.assert_array_equal(out.best_epoch, val.argmin(0) + 1)
    np.testing.assert_allclose(out.best_val_nll, val.min(0), rtol=1e-6)
    # best_params really are the ones that scored best_val_nll
    data = pretraining.make_flow_data(jax.random.split(jax.random.PRNGKey(3))[0], actions, states)
    for i in range(2):
        params = jax.tree_util.tree_map(lambda x: x[i], out.best_params)
        nll = pretraining.validation_nll(out.flow, params, data, 512)
        np.testing.assert_allclose(nll, out.best_val_nll[i], rtol=1e-4, atol=1e-4)


def test_a_nan_validation_epoch_never_becomes_the_best():
    """An epoch whose validation NLL is NaN (here: a NaN action among the validation rows)
    keeps the best earlier parameters, and a later finite epoch can still improve on them."""
    actions, states, _ = synthetic(jax.random.PRNGKey(7), 3000)
    actions = actions.at[0].set(jnp.nan)  # row 0 is never trained on
    clean = pretraining.FlowData(actions, states, train_indices=jnp.arange(300, 3000),
                                 val_indices=jnp.arange(1, 300))
    poisoned = clean._replace(val_indices=jnp.arange(0, 300))
    config = dataclasses.replace(SMALL, num_blocks=2, hidden_dims=(16, 16), max_grad_norm=1.0,
                                 learning_rate=1e-3)
    flow = config.make_flow(2, 2)
    epoch = jax.jit(pretraining.make_epoch(config, flow, num_train=2700))
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    start = jax.jit(lambda key: pretraining.init(config, flow, key, clean))(k[0])
    first, m1 = epoch(start, k[1], clean)
    assert int(first.best_epoch) == 0 and np.isfinite(m1["val_nll"])

    second, m2 = epoch(first, k[2], poisoned)
    assert np.isnan(m2["val_nll"]) and not bool(m2["finite"])
    assert int(second.best_epoch) == 0 and float(second.best_val_nll) == float(m1["val_nll"])
    for best, kept in zip(jax.tree.leaves(second.best_params), jax.tree.leaves(first.params)):
        np.testing.assert_array_equal(best, kept)
    assert any(not np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(second.params), jax.tree.leaves(first.params)))  # it trained

    third, m3 = epoch(second, k[3], clean)
    assert float(m3["val_nll"]) < float(m1["val_nll"])
    assert int(third.best_epoch) == 2 and float(third.best_val_nll) == float(m3["val_nll"])
    for best, now in zip(jax.tree.leaves(third.best_params), jax.tree.leaves(third.params)):
        np.testing.assert_array_equal(best, now)


def test_seeds_are_independent_and_deterministic():
    actions, states, _ = synthetic(jax.random.PRNGKey(2), 2000)
    run = lambda: pretrain(SMALL, actions, states, num_epochs=2, num_seeds=2, seed=5, progress=False, log=lambda _: None)
    a, b = run(), run()
    for x, y in zip(jax.tree_util.tree_leaves(a.best_params), jax.tree_util.tree_leaves(b.best_params)):
        np.testing.assert_array_equal(x, y)
    assert a.history[-1]["val_nll"][0] != a.history[-1]["val_nll"][1]


def test_update_step_lowers_the_loss():
    actions, states, _ = synthetic(jax.random.PRNGKey(3), 1024)
    config = dataclasses.replace(SMALL, max_grad_norm=1.0, learning_rate=1e-3)
    flow = config.make_flow(2, 2)
    data = pretraining.make_flow_data(jax.random.PRNGKey(0), actions, states)
    state = pretraining.init(config, flow, jax.random.PRNGKey(0), data)
    step = jax.jit(lambda s: pretraining.update_step(config, flow, s, actions, states))
    before = pretraining.loss(flow, state.params, actions, states)
    for _ in range(20):
        state, metrics = step(state)
    assert pretraining.loss(flow, state.params, actions, states) < before - 0.1
    assert np.isfinite(metrics["grad_norm"])


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="batch_size"):
        dataclasses.replace(SMALL, batch_size=0).validate()
    actions, states, _ = synthetic(jax.random.PRNGKey(4), 200)
    with pytest.raises(ValueError, match="larger than the"):
        pretrain(SMALL, actions, states, num_epochs=1, progress=False)


def test_save_and_load_round_trip(tmp_path):
    actions, states, _ = synthetic(jax.random.PRNGKey(5), 1000)
    out = pretrain(SMALL, actions, states, num_epochs=1, num_seeds=2, progress=False, log=lambda _: None)
    # Statistics no default could stand in for: evaluation normalizes with what comes back.
    mean, std = jnp.array([1.5, -2.25]), jnp.array([0.3, 4.0])
    save_pretrained_flow(tmp_path / "flow", out.flow, out.best_params, mean, std, {"dataset": "synthetic"})
    loaded = load_pretrained_flow(tmp_path / "flow")
    assert loaded.flow == out.flow and loaded.num_seeds == 2
    assert loaded.info["dataset"] == "synthetic"
    np.testing.assert_array_equal(loaded.state_mean, mean)
    np.testing.assert_array_equal(loaded.state_std, std)
    for x, y in zip(jax.tree_util.tree_leaves(loaded.params), jax.tree_util.tree_leaves(out.best_params)):
        np.testing.assert_array_equal(x, y)


def test_load_refuses_mismatched_or_missing(tmp_path):
    with pytest.raises(CheckpointError, match="no pretrained flow"):
        load_pretrained_flow(tmp_path / "nothing")
    actions, states, _ = synthetic(jax.random.PRNGKey(6), 1000)
    out = pretrain(SMALL, actions, states, num_epochs=1, progress=False, log=lambda _: None)
    save_pretrained_flow(tmp_path / "flow", out.flow, out.best_params, jnp.zeros(2), jnp.ones(2), {})
    # A flow.json that claims another architecture must not restore part of the params.
    meta = (tmp_path / "flow" / "flow.json").read_text().replace('"num_blocks": 4', '"num_blocks": 5')
    (tmp_path / "flow" / "flow.json").write_text(meta)
    with pytest.raises(CheckpointError, match="structure"):
        load_pretrained_flow(tmp_path / "flow")
    (tmp_path / "flow" / "flow.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_pretrained_flow(tmp_path / "flow")


class Interrupted(Exception):
    pass


def assert_same_pretraining(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a.best_params), jax.tree_util.tree_leaves(b.best_params)):
        np.testing.assert_array_equal(x, y)
    assert a.history == b.history
    np.testing.assert_array_equal(a.best_epoch, b.best_epoch)
    np.testing.assert_array_equal(a.best_val_nll, b.best_val_nll)


def test_a_stopped_pretraining_resumes_to_the_same_flow_bit_for_bit(tmp_path):
    actions, states, _ = synthetic(jax.random.PRNGKey(7), 1500)
    kwargs = dict(num_epochs=4, num_seeds=2, seed=7, progress=False, log=lambda _: None)
    plain = pretrain(SMALL, actions, states, **kwargs)
    # Checkpointing changes nothing, and keeps the last two epochs.
    checkpointed = pretrain(SMALL, actions, states, **kwargs, checkpoints=FlowProgress(tmp_path / "a", {"x": 1}))
    assert_same_pretraining(plain, checkpointed)
    assert sorted(p.name for p in (tmp_path / "a" / "progress").iterdir()) == ["3", "4"]

    # Asked to stop (a SIGTERM at the edge: should_stop) during epoch 2, it ends that epoch,
    # saved, and says where it stopped. (A kill right after a save, the other way a pretraining
    # ends early, is tests/experiments/test_pretrain_flow.py's SIGKILL; both leave the same
    # checkpoints.)
    asked = iter([False, True])
    with pytest.raises(PretrainingStopped, match="after epoch 2/4") as stopped:
        pretrain(SMALL, actions, states, **kwargs, checkpoints=FlowProgress(tmp_path / "b", {"x": 1}),
                 should_stop=lambda: next(asked))
    assert (stopped.value.epochs_done, stopped.value.num_epochs) == (2, 4)
    assert sorted(p.name for p in (tmp_path / "b" / "progress").iterdir()) == ["1", "2"]
    messages = []
    resumed = pretrain(SMALL, actions, states, **{**kwargs, "log": messages.append},
                       checkpoints=FlowProgress(tmp_path / "b", {"x": 1}), should_stop=lambda: False)
    assert "resuming the flow's pretraining after epoch 2/4" in messages
    assert sum("flow epoch" in m for m in messages) == 2  # epochs 3 and 4 only
    assert_same_pretraining(plain, resumed)
    # Another identity (other data or settings) is never restored.
    assert FlowProgress(tmp_path / "b", {"x": 2}).restore(None) is None


def test_a_flow_that_never_reaches_a_finite_validation_nll_is_an_error():
    actions, states, _ = synthetic(jax.random.PRNGKey(8), 1000)
    states = states.at[::7, 0].set(jnp.nan)
    with pytest.raises(FlowDivergedError, match=r"seed\(s\) \[0\] never reached a finite validation NLL in 2"):
        pretrain(SMALL, actions, states, num_epochs=2, progress=False, log=lambda _: None)


def test_a_save_that_dies_while_replacing_a_flow_leaves_no_finished_flow(tmp_path, monkeypatch):
    from lfjax.checkpoints import flows

    actions, states, _ = synthetic(jax.random.PRNGKey(9), 1000)
    out = pretrain(SMALL, actions, states, num_epochs=1, progress=False, log=lambda _: None)
    save_pretrained_flow(tmp_path, out.flow, out.best_params, jnp.zeros(2), jnp.ones(2), {"made": "first"})
    other = jax.tree_util.tree_map(lambda x: x + 1, out.best_params)

    def die(path, obj):
        raise Interrupted  # after params/ was replaced, before the new flow.json

    monkeypatch.setattr(flows, "write_json", die)
    with pytest.raises(Interrupted):
        save_pretrained_flow(tmp_path, out.flow, other, jnp.zeros(2), jnp.ones(2), {"made": "second"})
    # Not the first flow's record over the second flow's params: no finished flow at all.
    with pytest.raises(CheckpointError, match="no pretrained flow"):
        load_pretrained_flow(tmp_path)


def test_spread_saturated_moves_only_saturated_entries_into_a_band():
    actions = jnp.array([[1.0, -1.0], [0.3, 1.0], [-0.99, -1.0]] * 200)
    spread = np.asarray(pretraining.spread_saturated(jax.random.PRNGKey(0), actions, 0.1))
    saturated = np.abs(np.asarray(actions)) == 1.0
    np.testing.assert_array_equal(spread[~saturated], np.asarray(actions)[~saturated])
    band = np.abs(spread[saturated])
    assert np.all((band > 0.9) & (band <= 1.0)) and band.std() > 0.02  # spread, not shifted
    np.testing.assert_array_equal(np.sign(spread), np.sign(np.asarray(actions)))


def test_saturation_noise_gives_the_flow_a_band_instead_of_a_point_mass():
    """Actions all at ±1 (random signs): the flow fits point masses, and its validation NLL
    falls far below 0. Spread over bands of width 1/2 (density 1 on a support of measure 1 per
    dimension) no density can do better than NLL 0 on held-out rows."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    states = jax.random.normal(k1, (4096, 2))
    actions = jnp.where(jax.random.bernoulli(k2, 0.5, (4096, 2)), 1.0, -1.0)
    config = FlowTrainConfig(num_blocks=2, hidden_dims=(16, 16), batch_size=256)
    quiet = dict(num_epochs=3, progress=False, log=lambda _: None)
    point = pretrain(config, actions, states, **quiet)
    band = pretrain(dataclasses.replace(config, saturation_noise=0.5), actions, states, **quiet)
    assert float(point.best_val_nll[0]) < -2.0
    assert float(band.best_val_nll[0]) > -0.1
