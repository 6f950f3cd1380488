"""A core-only install (`pip install lfjax`, no extras) works: run in a venv holding lfjax and
its core dependencies only, from outside the checkout so that the installed package is the one
imported. Builds a flow, pretrains it an epoch, trains the agent a few updates through it."""

import importlib.util
import sys

import flax
import jax
import jax.numpy as jnp

import lfjax.agent
import lfjax.configs
import lfjax.flows
import lfjax.pretraining

EXTRAS = ("gymnasium", "gymnasium_robotics", "mujoco", "minari", "h5py", "matplotlib", "tqdm")
installed = [m for m in EXTRAS if importlib.util.find_spec(m) is not None]
assert not installed, f"not a core-only environment: {installed} installed"
assert "site-packages" in lfjax.__file__, f"lfjax imported from the checkout: {lfjax.__file__}"


@flax.struct.dataclass
class Transitions:  # the fields of lfjax.data.Transitions
    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_observations: jax.Array
    terminals: jax.Array


key = jax.random.PRNGKey(0)
k_obs, k_act, k_rew = jax.random.split(key, 3)
states = jax.random.normal(k_obs, (512, 4))
actions = jax.random.uniform(k_act, (512, 2), minval=-0.9, maxval=0.9)

flow_config = lfjax.configs.FlowTrainConfig(num_blocks=2, hidden_dims=(32, 32), batch_size=128)
out = lfjax.pretraining.pretrain(flow_config, actions, states, num_epochs=1, log=lambda _: None)
assert jnp.isfinite(out.best_val_nll).all(), out.best_val_nll

flow = out.flow
frozen = jax.vmap(flow.freeze)(out.best_params)
data = Transitions(states, actions, jax.random.normal(k_rew, (512,)), states, jnp.zeros((512,)))
config = lfjax.agent.AWACConfig(batch_size=64, hidden_dims=(32, 32))
agent_states = jax.vmap(lfjax.agent.make_init(config, flow, 4))(key[None])
agent_states, metrics = lfjax.agent.make_train(config, flow)(agent_states, frozen, data, 3)
assert bool(metrics["finite"].all()), metrics
print(f"core-only install OK on Python {sys.version.split()[0]}: jax {jax.__version__}, "
      f"flow NLL {float(out.best_val_nll[0]):.2f}, critic loss {float(metrics['critic_loss'][0, -1]):.3f}")
