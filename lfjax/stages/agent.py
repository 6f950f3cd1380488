"""The agent stage: latent AWAC (or a baseline, `RunConfig.algo`) for every seed at once,
trained in chunks of ``eval_every`` updates (one jitted call each, `lfjax.agent.make_train`),
with an evaluation in the real environment and an orbax checkpoint between chunks, so that a
killed run resumes where it stopped. A seed that goes non-finite is rolled back to its last
good state, reported and frozen as failed; the others go on. A failed seed never contributes a
score: from its failure on, its scores are None and every mean and std is over the seeds still
going; when every seed has failed the stage stops with status "failed".

The results dict it returns (and hands to ``report`` after every evaluation) holds the status
("running", "finished", or "failed" when every seed failed), the curve (per evaluation:
updates, eval_seed, episodes per seed, per-seed scores (None for a failed seed), the failed
seeds, mean, std, updates/s and the mean of every training metric; the last evaluation uses
final_eval_episodes), the final scores with the failed seeds and where each failed, and the
baselines (random = 0 and behaviour cloning through the same flow, for latent AWAC).
"""

import pathlib
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from lfjax import agent, data, evaluation, sharding
from lfjax.envs import make_batched_env
from lfjax.checkpoints import (
    PretrainedFlow,
    hold_directory,
    restore_latest,
    restore_run_states,
    run_checkpoints,
    save_run_checkpoint,
)
from lfjax.configs import RunConfig
from lfjax.stages.dataset import normalized

Log = Callable[[str], None]

# The name of the flow-BC baseline in results["baselines"] (latent AWAC runs only).
FLOW_BC = "flow BC (z ~ U)"


@jax.jit
def where_seeds(ok: jnp.ndarray, new, old):
    """Per seed: new where ok [N], else old (a seed that went non-finite keeps its last good
    state). Jitted: one small program instead of an eager op per leaf."""

    def pick(n, o):
        return jnp.where(ok.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)

    return jax.tree_util.tree_map(pick, new, old)


def eval_seed(config: RunConfig, updates: int) -> int:
    """The seed of the evaluation after ``updates`` updates: distinct episodes at every
    evaluation, the same ones again on resume."""
    return (config.seed * 1_000_003 + updates) % (2**31 - 1)


def frozen_flows(pretrained: PretrainedFlow, num_seeds: int):
    """Every seed's frozen decoder parameters [num_seeds, ...]: one shared flow is repeated."""
    flow_params = pretrained.params
    if pretrained.num_seeds != num_seeds:  # one shared flow: every seed's agent decodes with it
        flow_params = jax.tree_util.tree_map(
            lambda x: jnp.broadcast_to(x, (num_seeds, *x.shape[1:])), flow_params
        )
    return jax.jit(jax.vmap(pretrained.flow.freeze))(flow_params)


def agent_init(config: RunConfig, pretrained: PretrainedFlow, obs_dim: int) -> tuple[Callable, jax.Array]:
    """(init, keys): ``jax.vmap(init)(keys)`` gives every seed's fresh agent state."""
    init = agent.make_init(config.agent, pretrained.flow, obs_dim,
                           behaviour_cloning=not config.uses_critics)
    seeds = [config.seed + i for i in range(config.num_seeds)]
    return init, jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), 1) for s in seeds])


def train_agent(
    config: RunConfig,
    loaded: data.LoadedDataset,
    pretrained: PretrainedFlow,
    workdir: pathlib.Path,
    *,
    resume: bool = False,
    progress: bool = False,
    log: Log = print,
    results_base: dict[str, Any] | None = None,
    report: Callable[[dict[str, Any]], None] = lambda results: None,
) -> dict[str, Any]:
    """Trains latent AWAC for every seed at once, evaluating and checkpointing (in
    <workdir>/checkpoints) between chunks; ``resume`` continues from the latest checkpoint.
    Returns the results dict (module docstring), ``results_base`` merged in; ``report`` gets
    it after every evaluation (to write it out) and once more at the end. Holds workdir's lock
    throughout (DirectoryBusyError when another process writes there)."""
    with hold_directory(workdir):
        return _train_agent(config, loaded, pretrained, workdir, resume, progress, log,
                            results_base, report)


def _train_agent(config, loaded, pretrained, workdir, resume, progress, log, results_base, report):
    """train_agent's body, run while it holds the workdir's lock (same arguments)."""
    flow = pretrained.flow
    num_seeds = config.num_seeds
    frozen = frozen_flows(pretrained, num_seeds)
    stats = data.StateStats(mean=pretrained.state_mean, std=pretrained.state_std)
    dataset = normalized(loaded.transitions, stats)
    seeds = [config.seed + i for i in range(num_seeds)]

    init, init_keys = agent_init(config, pretrained, loaded.spec.obs_dim)
    states = jax.jit(jax.vmap(init))(init_keys)
    # Seeds split over the local devices, the dataset copied once to each (one device: committed).
    mesh = sharding.seed_mesh(num_seeds)
    if note := sharding.mesh_note(num_seeds, mesh):
        log(note)
    states, frozen = sharding.shard_seeds((states, frozen), mesh)
    dataset = sharding.replicate(dataset, mesh)
    train_chunk = agent.make_train(config.agent, flow, behaviour_cloning=not config.uses_critics)
    act = agent.make_act(config.agent, flow)
    make_env = lambda i: loaded.spec.make_eval_env()
    # All copies of one evaluation step in one MuJoCo call (None: an env it cannot copy
    # exactly, stepped one by one); made once per size and kept for every evaluation.
    batched_envs = {}

    def batched_env(num_envs: int):
        if num_envs not in batched_envs:
            batched_envs[num_envs] = make_batched_env(loaded.spec, num_envs)
        return batched_envs[num_envs]

    def evaluate(actor_params, updates: int, episodes: int, act_fn=act) -> np.ndarray:
        # Each process rolls out the seeds it holds; every process gets all the scores.
        indices, (local_actor, local_frozen) = sharding.addressable_seeds((actor_params, frozen))
        returns = evaluation.evaluate(
            act_fn, local_actor, local_frozen, stats, make_env,
            num_episodes=episodes, seed=eval_seed(config, updates),
            seed_indices=indices, num_run_seeds=num_seeds,
            batched_env=batched_env(len(indices) * episodes),
        )
        scores = loaded.normalized_score(returns).mean(axis=1)
        return sharding.gather_seeds(scores, indices, num_seeds)  # [N]

    manager = run_checkpoints(workdir)
    restored = restore_latest(manager, workdir, states) if resume else None
    if restored is not None:
        updates, states, record = restored  # placed like the fresh states
        curve, failed, baselines = record["curve"], np.array(record["failed"]), record["baselines"]
        # Older checkpoints did not record where a seed failed.
        failed_within = record.get("failed_within", [None] * num_seeds)
        log(f"resuming from the checkpoint at {updates} updates")
    else:
        updates, curve, failed = 0, [], np.zeros(num_seeds, bool)
        failed_within = [None] * num_seeds
        baselines = {"random policy": 0.0}
        if config.uses_flow:
            # Behaviour cloning through the same flow: decode z ~ Uniform(-1, 1)^L, the flow's
            # own model of the data's actions, with no actor at all.
            bc_act = lambda _, flow_params, obs, key: jnp.clip(flow.sample(flow_params, key, obs), -1, 1)
            bc = evaluate(frozen, 0, config.eval_episodes, act_fn=bc_act)
            baselines[FLOW_BC] = float(bc.mean())
            log(f"flow behaviour-cloning policy: normalized score {bc.mean():.1f} ± {bc.std():.1f}")

    def results(done: bool) -> dict[str, Any]:
        scores = np.array(curve[-1]["scores"], float) if curve else np.full(num_seeds, np.nan)
        status = "failed" if failed.all() else "finished" if done else "running"
        return {
            **(results_base or {}),
            "status": status,
            "updates": updates,
            "final": {
                **seed_summary(scores, failed),
                "failed_seeds": [seeds[i] for i in np.flatnonzero(failed)],
                "failures": [{"seed": seeds[i], "within_updates": failed_within[i]}
                             for i in np.flatnonzero(failed)],
            },
            "baselines": baselines,
            "curve": curve,
        }

    bar = _progress_bar(config.num_updates, updates) if progress else None
    while updates < config.num_updates and not failed.all():
        n = min(config.eval_every, config.num_updates - updates)
        start = time.perf_counter()
        new_states, metrics = train_chunk(states, frozen, dataset, n)
        metrics = sharding.to_host(metrics)  # [N, n] each; across hosts, gathered from all
        finite = metrics["finite"].all(axis=1)
        seconds = time.perf_counter() - start
        newly_failed = ~finite & ~failed
        for i in np.flatnonzero(newly_failed):
            log(f"seed {seeds[i]}: non-finite loss or parameters within updates "
                f"{updates}-{updates + n}; it has failed and is stopped (no score from it from "
                "now on); the other seeds go on")
            failed_within[i] = [updates, updates + n]
        failed |= newly_failed
        # A failed seed keeps its last good state: nothing non-finite is ever saved or rolled out.
        states = where_seeds(~failed, new_states, states)
        updates += n
        # The last evaluation gives the final score: more episodes (final_eval_episodes).
        episodes = config.final_eval_episodes if updates >= config.num_updates else config.eval_episodes
        if failed.all():
            scores = np.full(num_seeds, np.nan)  # nothing left to evaluate
        else:
            scores = evaluate(states.actor_params, updates, episodes)
        means = {k: float(np.mean(np.asarray(v)[~failed])) if (~failed).any() else None
                 for k, v in metrics.items() if k != "finite"}
        curve.append({
            "updates": updates,
            "eval_seed": eval_seed(config, updates),  # experiments.evaluate --eval_seed redoes it
            "episodes": episodes,
            **seed_summary(scores, failed),
            "failed_seeds": [seeds[i] for i in np.flatnonzero(failed)],
            "updates_per_second": n / seconds,
            **means,
        })
        save_run_checkpoint(manager, updates, states, {
            "curve": curve, "failed": failed.tolist(), "failed_within": failed_within,
            "baselines": baselines,
        })
        report(results(done=updates >= config.num_updates))
        if bar is not None:
            bar.update(n)
            if curve[-1]["mean"] is not None:
                bar.set_postfix(score=f"{curve[-1]['mean']:.1f}±{curve[-1]['std']:.1f}",
                                **{"upd/s": f"{n / seconds:.0f}"})
    if bar is not None:
        bar.close()
    for env in batched_envs.values():
        if env is not None:
            env.close()
    final = results(done=True)
    report(final)
    return final


def seed_summary(scores: np.ndarray, failed: np.ndarray) -> dict[str, Any]:
    """One evaluation's scores [N] and which seeds have failed [N] -> {"scores": N floats, None
    for a failed seed; "mean", "std": over the other seeds, None when every seed failed}."""
    good = np.asarray(scores, float)[~failed]
    return {
        "scores": [None if bad else float(v) for v, bad in zip(scores, failed)],
        "mean": float(good.mean()) if good.size else None,
        "std": float(good.std()) if good.size else None,
    }


def _progress_bar(total: int, initial: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="awac", unit="upd", file=sys.stdout,
                dynamic_ncols=True)


def load_agents(config: RunConfig, pretrained: PretrainedFlow, obs_dim: int,
                workdir: pathlib.Path, step: int | None = None) -> tuple[int, agent.TrainState]:
    """(step, the seed-stacked train states [N, ...]) saved by `train_agent` in workdir at
    ``step`` (default: the latest; the run keeps the last two). ValueError naming the steps
    there when ``step`` is not one of them."""
    steps = sorted(run_checkpoints(workdir).all_steps())
    step = step if step is not None else (steps[-1] if steps else None)
    if step not in steps:
        raise ValueError(
            f"no checkpoint {step} in {workdir / 'checkpoints'} (it keeps the last two "
            f"evaluations): choose --step from {steps}" if steps else
            f"{workdir} has no checkpoint yet: the run saves one at each evaluation"
        )
    init, keys = agent_init(config, pretrained, obs_dim)
    like = jax.eval_shape(jax.vmap(init), keys)
    return step, restore_run_states(workdir, step, like)


def evaluate_agents(
    config: RunConfig,
    spec: data.EnvSpec,
    pretrained: PretrainedFlow,
    actor_params: Any,
    *,
    num_episodes: int,
    seed: int = 0,
    deterministic: bool = False,
    seed_indices: Any = None,
) -> np.ndarray:
    """Undiscounted returns [n, num_episodes] of the actors of the seeds ``seed_indices``
    (default: all N; actor params [N, ...]) acting through the frozen flow in spec's evaluation
    env, as the run's own evaluations do (with ``seed`` an evaluation's eval_seed, the same
    episodes and noise for each seed). deterministic acts with tanh(mean) instead of a sample.
    Leave failed seeds out: a seed with non-finite parameters raises NonFiniteParametersError."""
    act = agent.make_act(config.agent, pretrained.flow, deterministic=deterministic)
    stats = data.StateStats(mean=pretrained.state_mean, std=pretrained.state_std)
    indices = np.arange(config.num_seeds) if seed_indices is None else np.asarray(seed_indices, int)
    take = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[indices], tree)
    batched_env = make_batched_env(spec, len(indices) * num_episodes)
    try:
        return evaluation.evaluate(
            act, take(actor_params), take(frozen_flows(pretrained, config.num_seeds)), stats,
            lambda i: spec.make_eval_env(), num_episodes=num_episodes, seed=seed,
            seed_indices=indices, num_run_seeds=config.num_seeds, batched_env=batched_env,
        )
    finally:
        if batched_env is not None:
            batched_env.close()
