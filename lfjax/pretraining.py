"""Maximum-likelihood pretraining of the conditional flow p(a | s) (SPEC.md 3).

Pure pieces (:func:`init`, :func:`loss`, :func:`update_step`) composed by
:func:`make_train` into one jitted epoch: batches are gathered by index from the
device-resident dataset inside a ``lax.scan``, the validation NLL is computed at the end
of the epoch, and the lowest-validation-NLL parameters are kept in the train state. Seeds
are a leading axis on the train state (``jax.vmap``); the data is shared, never copied.
"""

import dataclasses
import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from lfjax.flows import ConditionalFlow, FlowParams, make_flow


@dataclasses.dataclass(frozen=True)
class FlowTrainConfig:
    """Flow-pretraining hyperparameters; defaults are the paper's (SPEC.md 2-3)."""

    num_blocks: int = 12
    hidden_dims: tuple[int, ...] = (256, 256)
    learning_rate: float = 5e-4
    weight_decay: float = 1e-4
    batch_size: int = 1024
    max_grad_norm: float = 0.1
    # None: the dataset's own count (100 medium and maze, 350 medium-replay, 50 medium-expert).
    num_epochs: int | None = None
    validation_fraction: float = 0.1
    # Validation runs in chunks of this many rows to bound memory on large datasets.
    validation_chunk: int = 8192

    @classmethod
    def quick(cls) -> "FlowTrainConfig":
        """The paper's flow with 7 epochs instead of 100 (BUILD_NOTES.md, quick preset: fewer
        blocks or epochs measurably stop the agent from learning)."""
        return cls(num_epochs=7)

    def make_flow(self, action_dim: int, state_dim: int) -> ConditionalFlow:
        return make_flow(action_dim, state_dim, self.num_blocks, self.hidden_dims)

    def validate(self) -> None:
        """Raises ValueError naming the first invalid setting."""
        positive = ("num_blocks", "batch_size", "validation_chunk")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"flow config: {name} must be positive, got {getattr(self, name)}")
        if self.num_epochs is not None and self.num_epochs < 1:
            raise ValueError(f"flow config: num_epochs must be positive, got {self.num_epochs}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"flow config: validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )


class FlowData(NamedTuple):
    """The pretraining data, on the device once and shared by all seeds.

    actions [N, A]; states [N, S] (normalized); train_indices [N_train]; val_indices [N_val].
    """

    actions: jnp.ndarray
    states: jnp.ndarray
    train_indices: jnp.ndarray
    val_indices: jnp.ndarray


class FlowTrainState(NamedTuple):
    """Everything one seed's pretraining carries; add a leading axis for many seeds."""

    params: FlowParams
    opt_state: optax.OptState
    best_params: FlowParams
    best_val_nll: jnp.ndarray  # [] float32, +inf before the first validation
    best_epoch: jnp.ndarray  # [] int32, -1 before the first validation
    epoch: jnp.ndarray  # [] int32, epochs done


def make_flow_data(
    key: chex.PRNGKey, actions: jnp.ndarray, states: jnp.ndarray, validation_fraction: float = 0.1
) -> FlowData:
    """A random train/validation split of row indices (shared by every seed)."""
    chex.assert_rank([actions, states], 2)
    chex.assert_equal_shape_prefix([actions, states], 1)
    n = actions.shape[0]
    num_val = max(1, int(round(n * validation_fraction)))
    if n - num_val < 1:
        raise ValueError(f"dataset of {n} rows is too small to split for validation")
    perm = jax.random.permutation(key, n)
    return FlowData(actions, states, perm[num_val:], perm[:num_val])


def make_optimizer(config: FlowTrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW (the official code's torch AdamW settings)."""
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adamw(config.learning_rate, weight_decay=config.weight_decay),
    )


def loss(flow: ConditionalFlow, params: FlowParams, actions: jnp.ndarray, states: jnp.ndarray):
    """Mean negative log-likelihood of actions [B, A] given states [B, S]."""
    return -jnp.mean(flow.log_prob(params, actions, states))


def init(
    config: FlowTrainConfig, flow: ConditionalFlow, key: chex.PRNGKey, data: FlowData
) -> FlowTrainState:
    """One seed's train state; ActNorm is initialized from a random training batch."""
    batch_key, init_key = jax.random.split(key)
    batch_size = min(config.batch_size, data.train_indices.shape[0])
    rows = jax.random.choice(batch_key, data.train_indices, (batch_size,), replace=False)
    params = flow.init(init_key, data.actions[rows], data.states[rows])
    return FlowTrainState(
        params=params,
        opt_state=make_optimizer(config).init(params),
        best_params=params,
        best_val_nll=jnp.asarray(jnp.inf, jnp.float32),
        best_epoch=jnp.asarray(-1, jnp.int32),
        epoch=jnp.asarray(0, jnp.int32),
    )


def update_step(
    config: FlowTrainConfig,
    flow: ConditionalFlow,
    state: FlowTrainState,
    actions: jnp.ndarray,
    states: jnp.ndarray,
) -> tuple[FlowTrainState, dict]:
    """One AdamW step on a batch: actions [B, A], states [B, S]."""
    nll, grads = jax.value_and_grad(lambda p: loss(flow, p, actions, states))(state.params)
    updates, opt_state = make_optimizer(config).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state._replace(params=params, opt_state=opt_state), {
        "nll": nll,
        "grad_norm": optax.tree.norm(grads),
    }


def validation_nll(
    flow: ConditionalFlow, params: FlowParams, data: FlowData, chunk: int
) -> jnp.ndarray:
    """Mean NLL over every validation row, computed in chunks of ``chunk`` rows."""
    n = data.val_indices.shape[0]
    chunk = min(chunk, n)
    num_chunks = math.ceil(n / chunk)
    padded = jnp.pad(data.val_indices, (0, num_chunks * chunk - n))
    mask = (jnp.arange(num_chunks * chunk) < n).reshape(num_chunks, chunk)

    def chunk_nll(args):
        rows, valid = args
        nll = -flow.log_prob(params, data.actions[rows], data.states[rows])
        return jnp.sum(jnp.where(valid, nll, 0.0))

    return jnp.sum(jax.lax.map(chunk_nll, (padded.reshape(num_chunks, chunk), mask))) / n


def make_train(config: FlowTrainConfig, flow: ConditionalFlow, num_train: int):
    """Returns ``train_epoch(state, key, data) -> (state, metrics)`` for one seed.

    An epoch is a shuffled pass over the training rows (the last partial batch dropped)
    under ``lax.scan``, then the validation NLL; when it is the lowest so far, the params
    are kept as ``best_params``. Metrics: mean train NLL, validation NLL, mean grad norm,
    and whether everything stayed finite. Wrap it as
    ``jax.jit(jax.vmap(train_epoch, in_axes=(0, 0, None)))`` for many seeds.
    """
    batch_size = min(config.batch_size, num_train)
    steps = num_train // batch_size

    def train_epoch(state: FlowTrainState, key: chex.PRNGKey, data: FlowData):
        batches = jax.random.permutation(key, data.train_indices)[: steps * batch_size]

        def step(state, rows):
            return update_step(config, flow, state, data.actions[rows], data.states[rows])

        state, metrics = jax.lax.scan(step, state, batches.reshape(steps, batch_size))
        val_nll = validation_nll(flow, state.params, data, config.validation_chunk)
        improved = val_nll < state.best_val_nll  # False for NaN: a diverged epoch never wins
        keep = lambda new, old: jnp.where(improved, new, old)
        state = state._replace(
            best_params=jax.tree_util.tree_map(keep, state.params, state.best_params),
            best_val_nll=keep(val_nll, state.best_val_nll),
            best_epoch=keep(state.epoch, state.best_epoch),
            epoch=state.epoch + 1,
        )
        finite = jnp.all(jnp.isfinite(metrics["nll"])) & jnp.isfinite(val_nll)
        return state, {
            "train_nll": jnp.mean(metrics["nll"]),
            "val_nll": val_nll,
            "grad_norm": jnp.mean(metrics["grad_norm"]),
            "finite": finite,
        }

    return train_epoch
