"""Maximum-likelihood pretraining of the conditional flow p(a | s) (SPEC.md 3).

Pure pieces (:func:`init`, :func:`loss`, :func:`update_step`) make one seed's epoch
(:func:`make_epoch`): batches are gathered by index from the device-resident dataset inside a
``lax.scan``, the validation NLL is computed at the end of the epoch, and the
lowest-validation-NLL parameters are kept in the train state. :func:`make_train` turns it into
the jitted program for N seeds at once (seeds are a leading axis on the train state, the data
is shared, never copied), and :func:`pretrain` runs it epoch by epoch from host arrays to the
best parameters of every seed.

Shapes: N seeds, M rows, A action dim, S state dim.
"""

import math
import sys
import time
from typing import Any, Callable, NamedTuple, Protocol

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lfjax import processes, sharding
from lfjax.configs import FlowTrainConfig
from lfjax.flows import ConditionalFlow, FlowParams


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


def spread_saturated(key: chex.PRNGKey, actions: jnp.ndarray, width: float) -> jnp.ndarray:
    """actions [M, A] with every saturated entry (|a| >= 1 - 1e-4) moved to sign(a) (1 - width
    u), u ~ U(0, 1): a band the flow can fit instead of a point mass (FlowTrainConfig.
    saturation_noise). The other entries are returned unchanged."""
    u = jax.random.uniform(key, actions.shape, actions.dtype)
    saturated = jnp.abs(actions) >= 1.0 - 1e-4
    return jnp.where(saturated, jnp.sign(actions) * (1.0 - width * u), actions)


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


def make_epoch(config: FlowTrainConfig, flow: ConditionalFlow, num_train: int):
    """Returns ``train_epoch(state, key, data) -> (state, metrics)`` for one seed.

    An epoch is a shuffled pass over the training rows (the last partial batch dropped)
    under ``lax.scan``, then the validation NLL; when it is the lowest so far, the params
    are kept as ``best_params``. Metrics: mean train NLL, validation NLL, mean grad norm,
    and whether everything stayed finite. :func:`make_train` is the jitted form for N seeds.
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


def make_train(config: FlowTrainConfig, flow: ConditionalFlow, num_train: int):
    """Returns the jitted ``train_epoch(states [N], keys [N], data) -> (states [N], metrics)``.

    One call is one epoch for every seed (:func:`make_epoch`, vmapped over the leading axis of
    states and keys; the data is shared, ``in_axes=None``). The states passed in are donated:
    their buffers hold the new states. metrics: dict of [N] arrays. Inputs placed with
    `lfjax.sharding` give outputs split the same way. The agent's `lfjax.agent.make_train` has
    the same form: a jitted, vmapped chunk of training for all seeds, the data an argument.
    """
    epoch = jax.vmap(make_epoch(config, flow, num_train), in_axes=(0, 0, None))
    return jax.jit(epoch, donate_argnums=0)


class FlowDivergedError(RuntimeError):
    """A flow's validation NLL never became finite: there is no flow to save or use."""


class PretrainingStopped(Exception):
    """:func:`pretrain` stopped because its caller asked it to (``should_stop``), after
    ``epochs_done`` of ``num_epochs`` epochs, the last of them checkpointed when it was given
    checkpoints: a resumed pretraining continues from there."""

    def __init__(self, epochs_done: int, num_epochs: int):
        super().__init__(f"flow pretraining stopped after epoch {epochs_done}/{num_epochs}")
        self.epochs_done = epochs_done
        self.num_epochs = num_epochs


class ProgressCheckpoints(Protocol):
    """Where :func:`pretrain` keeps its progress (`lfjax.checkpoints.FlowProgress`)."""

    def restore(self, like: Any) -> tuple[Any, dict] | None:
        """(tree, record) last saved (tree checked against ``like``), or None."""

    def save(self, epoch: int, tree: Any, record: dict) -> None:
        """Commits the tree of host arrays and the JSON record after ``epoch`` epochs."""


class PretrainOutput(NamedTuple):
    """What :func:`pretrain` returns (host-side values, device params)."""

    flow: ConditionalFlow
    best_params: FlowParams  # leading seed axis [N]
    history: list[dict]  # one entry per epoch: {"epoch", "train_nll" [N], "val_nll" [N], ...}
    best_epoch: np.ndarray  # [N], 1-based
    best_val_nll: np.ndarray  # [N]
    seconds: float


def pretrain(
    config: FlowTrainConfig,
    actions: jnp.ndarray,
    states: jnp.ndarray,
    *,
    num_epochs: int,
    num_seeds: int = 1,
    seed: int = 0,
    progress: bool = False,
    log: Callable[[str], None] = print,
    checkpoints: ProgressCheckpoints | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PretrainOutput:
    """Trains ``num_seeds`` flows on actions [M, A] given normalized states [M, S].

    The data goes to the device once; each epoch is one call of :func:`make_train`'s
    program. One 90/10 split (from ``seed``) is shared by all seeds; seed i's init and
    shuffles come from keys split off ``PRNGKey(seed)``. Each epoch's NLLs go to ``log``
    (with ``progress``, a tqdm bar shows them instead); a seed whose NLL goes non-finite keeps
    its best earlier parameters (a NaN epoch never becomes the best). Seeds are split over
    the devices (`lfjax.sharding`); in a multi-process job every process calls this with the
    same arguments.

    checkpoints: saves the whole train state (params, optimizer state, best params and NLL,
    epochs done; seed-stacked host arrays), the epoch keys and the history after every epoch,
    and continues from what it holds: epoch e's shuffles are fold_in(epoch keys, e), so a
    resumed pretraining ends with the same flow, bit for bit, as one never stopped.
    should_stop: asked after every epoch but the last (after its checkpoint is saved); True
    raises PretrainingStopped (e.g. on SIGTERM: the edge's signal handler sets a flag that
    this reads). In a multi-process job every process asks at the same epochs, so it may be
    a collective that makes them agree.
    Raises FlowDivergedError when a seed's validation NLL is never finite.
    """
    config.validate()
    if num_epochs < 1 or num_seeds < 1:
        raise ValueError(f"num_epochs and num_seeds must be positive, got {num_epochs}, {num_seeds}")
    actions = jnp.asarray(actions, jnp.float32)
    states = jnp.asarray(states, jnp.float32)
    if config.saturation_noise:
        actions = spread_saturated(jax.random.fold_in(jax.random.PRNGKey(seed), 1), actions,
                                   config.saturation_noise)
    flow = config.make_flow(actions.shape[-1], states.shape[-1])
    split_key, seeds_key = jax.random.split(jax.random.PRNGKey(seed))
    data = make_flow_data(split_key, actions, states, config.validation_fraction)
    num_train = int(data.train_indices.shape[0])
    if config.batch_size > num_train:
        raise ValueError(
            f"flow batch size {config.batch_size} is larger than the {num_train} training rows; "
            "pass a smaller --flow_batch_size"
        )
    init_keys, epoch_keys = jax.random.split(seeds_key)
    state = jax.jit(jax.vmap(lambda k: init(config, flow, k, data)))(
        jax.random.split(init_keys, num_seeds)
    )
    history, seconds_before = [], 0.0
    if checkpoints is not None:
        restored = _restore(checkpoints, state, epoch_keys, num_epochs)
        if restored is not None:
            state, history, seconds_before = restored
            log(f"resuming the flow's pretraining after epoch {len(history)}/{num_epochs}")
    # Seeds split over the devices, the data copied once to each (one device: committed).
    trained_in_each_process = jax.process_count() > 1 and num_seeds % jax.device_count() != 0
    if trained_in_each_process:
        # A shared flow across hosts: every process trains the same one on its own devices
        # (same keys, same data) rather than leave all but one process idle.
        mesh = sharding.seed_mesh(num_seeds, jax.local_devices())
        log(f"{num_seeds} flow(s) do not split over the {jax.device_count()} devices of "
            f"{jax.process_count()} processes: each process trains the same flow(s) on "
            f"{mesh.size} of its own devices")
    else:
        mesh = sharding.seed_mesh(num_seeds)
        if note := sharding.mesh_note(num_seeds, mesh):
            log(note)
    state, data = sharding.shard_seeds(state, mesh), sharding.replicate(data, mesh)
    train_epoch = make_train(config, flow, num_train)
    start = time.perf_counter()
    bar = _progress_bar(num_epochs, len(history)) if progress else None
    for epoch in range(len(history), num_epochs):
        keys = jax.random.split(jax.random.fold_in(epoch_keys, epoch), num_seeds)
        keys = sharding.shard_seeds(keys, mesh)
        state, metrics = train_epoch(state, keys, data)
        metrics = sharding.to_host(metrics)
        record = {"epoch": epoch + 1, **{k: np.asarray(v).tolist() for k, v in metrics.items()}}
        history.append(record)
        line = (
            f"flow epoch {epoch + 1}/{num_epochs}: train NLL {_fmt(metrics['train_nll'])}, "
            f"validation NLL {_fmt(metrics['val_nll'])}"
        )
        if bar is not None:
            bar.update(1)
            bar.set_postfix(train_nll=f"{np.mean(metrics['train_nll']):.3f}",
                            val_nll=f"{np.mean(metrics['val_nll']):.3f}")
            bar.write(line, file=sys.stdout)
        else:
            log(line)
        bad = np.flatnonzero(~np.asarray(metrics["finite"]))
        if bad.size:
            log(
                f"warning: flow seed(s) {bad.tolist()} produced non-finite NLL in epoch {epoch + 1}; "
                "their best earlier parameters are kept"
            )
        if checkpoints is not None:
            # Host copies, taken before the next epoch donates the state's buffers.
            checkpoints.save(epoch + 1, _progress_tree(sharding.to_host(state), epoch_keys),
                             {"history": history,
                              "seconds": seconds_before + time.perf_counter() - start})
        if should_stop is not None and epoch + 1 < num_epochs and should_stop():
            if bar is not None:
                bar.close()
            raise PretrainingStopped(epoch + 1, num_epochs)
    if bar is not None:
        bar.close()
    state = sharding.to_host(state)
    if trained_in_each_process:
        # Identical on identical hardware; elsewhere rounding may differ, and every process
        # must decode with the flow that process 0 saves.
        state = processes.broadcast_from_leader(state)
    _check_finite(history, np.asarray(state.best_val_nll))
    return PretrainOutput(
        flow=flow,
        best_params=jax.tree_util.tree_map(jnp.asarray, state.best_params),
        history=history,
        best_epoch=np.asarray(state.best_epoch) + 1,
        best_val_nll=np.asarray(state.best_val_nll),
        seconds=seconds_before + time.perf_counter() - start,
    )


def _progress_tree(state: FlowTrainState, epoch_keys: jax.Array) -> dict:
    """What a pretraining checkpoint holds: the state (as a dict: orbax stores plain
    containers) and the keys every later epoch's shuffles come from."""
    return {"state": state._asdict(), "epoch_keys": np.asarray(epoch_keys)}


def _restore(checkpoints: ProgressCheckpoints, fresh: FlowTrainState, epoch_keys: jax.Array,
             num_epochs: int) -> tuple[FlowTrainState, list[dict], float] | None:
    """(state [N] as host arrays, history, seconds) of the last checkpoint, or None."""
    like = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _progress_tree(fresh, epoch_keys)
    )
    restored = checkpoints.restore(like)
    if restored is None:
        return None
    tree, record = restored
    state, history = FlowTrainState(**tree["state"]), list(record["history"])
    epochs = np.asarray(state.epoch)
    if not np.array_equal(np.asarray(tree["epoch_keys"]), np.asarray(epoch_keys)) or (
        epochs != len(history)
    ).any() or len(history) > num_epochs:
        raise ValueError(
            f"the pretraining checkpoint (epoch {epochs.tolist()}, {len(history)} epochs of "
            f"history) does not continue this pretraining of {num_epochs} epochs (other keys "
            "or more epochs); delete it to start over"
        )
    return state, history, float(record.get("seconds", 0.0))


def _check_finite(history: list[dict], best_val_nll: np.ndarray) -> None:
    """FlowDivergedError when a seed never reached a finite validation NLL: its "best"
    parameters are its initial ones, no flow at all."""
    never = np.flatnonzero(~np.isfinite(best_val_nll))
    if never.size:
        last = history[-1]
        raise FlowDivergedError(
            f"flow seed(s) {never.tolist()} never reached a finite validation NLL in "
            f"{len(history)} epoch(s) (last train NLL {_fmt(np.asarray(last['train_nll'])[never])}, "
            f"validation NLL {_fmt(np.asarray(last['val_nll'])[never])}); nothing was saved. The "
            "dataset was checked for non-finite values when it was loaded, so the training "
            "itself diverged: try another --seed or a larger --flow_batch_size"
        )


def _progress_bar(num_epochs: int, initial: int = 0):
    from tqdm import tqdm  # the experiments extra; only needed when a bar is asked for

    return tqdm(total=num_epochs, initial=initial, desc="flow", unit="epoch", file=sys.stdout)


def _fmt(values) -> str:
    values = np.asarray(values)
    if values.size == 1:
        return f"{values.item():.4f}"
    return f"{values.mean():.4f} (seeds: {', '.join(f'{v:.3f}' for v in values)})"
