"""The agent stage: latent AWAC (or a baseline, `RunConfig.algo`) for every member at once —
every seed, or every configuration of a hyperparameter grid times every seed
(`RunConfig.sweep`) — trained in chunks of ``eval_every`` updates (one jitted call each,
`lfjax.agent.make_train`), with an evaluation in the real environment and an orbax checkpoint
between chunks, so that a killed run resumes where it stopped. A member that goes non-finite
is rolled back to its last good state, reported and frozen as failed; the others go on. A
failed member never contributes a score: from its failure on, its scores are None and every
mean and std is over the members still going; when every member has failed the stage stops
with status "failed".

Member m trains grid configuration m // num_seeds with seed index m % num_seeds: its init, its
training randomness, its evaluation episodes and its policy noise are those of that seed in a
run of that configuration alone, so a grid reproduces separate runs.

The results dict it returns (and hands to ``report`` after every evaluation) holds
- status: "running", "finished", "interrupted" (its caller asked it to stop: `train_agent`'s
  should_stop), or "failed" when every member failed;
- curve: per evaluation: updates, eval_seed, episodes per member, per-member scores (None for a
  failed member), the failed seeds, mean and std over the members still going, updates/s, the
  mean of every training metric, and for a grid the same per configuration (configs);
- members: per member: its overrides, seed, per-evaluation scores, final score, failure and
  the updates within which it failed;
- summary: per configuration, mean ± std over its seeds at the last evaluation, best first;
- final (scores, mean, std, failed seeds/members and where each failed) and the baselines
  (random = 0 and behaviour cloning through the same flow, for latent AWAC);
- data: the yardstick for the critics' mean Q, the dataset's mean discounted Monte-Carlo
  return at the agent's gamma (`lfjax.data.returns`), and its reward range;
- each curve point's diagnostics, per member: its critics' mean Q over the chunk; their Q at
  the first step of each evaluation episode (q_start) against the discounted return the episode
  then collected (return_start, cut at the episode's end: a lower bound by at most
  gamma^H r_max / (1 - gamma)); the share of episodes that reached a reward and the mean step
  of the first one; and in a maze where the episodes ended (mean distance to the goal, end
  cells with their counts).
- inputs: the sha256 of the dataset's transitions and of the flow (None without one) that
  every checkpoint also records, with the dataset's identity (`lfjax.stages.resume`);
- resumed (only once a run was resumed): per resume, the updates it resumed at, when, and
  which of RunConfig.RESUMABLE changed ({name: [before, now]}: a longer num_updates, other
  evaluation settings).
The last evaluation uses final_eval_episodes (a run extended later keeps that point as it
was, and its curve goes on). Evaluations fall at multiples of eval_every and at num_updates.
"""

import dataclasses
import datetime
import pathlib
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from lfjax import agent, data, evaluation, sharding
from lfjax.checkpoints import (
    PretrainedFlow,
    UnreadableCheckpointError,
    hold_directory,
    restore_newest_intact,
    restore_run_states,
    run_checkpoints,
    save_run_checkpoint,
    set_aside,
)
from lfjax.configs import RunConfig
from lfjax.data.returns import mean_discounted_return, n_step_transitions
from lfjax.envs import make_batched_env
from lfjax.stages import resume as resuming
from lfjax.stages.dataset import normalized

Log = Callable[[str], None]

# The name of the flow-BC baseline in results["baselines"] (latent AWAC runs only).
FLOW_BC = "flow BC (z ~ U)"


@dataclasses.dataclass(frozen=True)
class Members:
    """Who is who in a run's member axis [M = configs x seeds].

    Attributes:
        overrides: per grid configuration, its {name: value} ([{}] without a sweep).
        config_index, seed_index: [M] each member's configuration and seed index.
        seeds: [M] each member's seed (config.seed + seed_index).
    """

    overrides: list[dict[str, float]]
    config_index: np.ndarray
    seed_index: np.ndarray
    seeds: np.ndarray

    @classmethod
    def of(cls, config: RunConfig) -> "Members":
        m = np.arange(config.num_members)
        return cls(config.grid, m // config.num_seeds, m % config.num_seeds,
                   config.seed + m % config.num_seeds)

    @property
    def num_configs(self) -> int:
        return len(self.overrides)

    def name(self, m: int) -> str:
        """'seed 3', or 'tau=0.01 awac_lambda=0.3 seed 3' in a grid."""
        where = " ".join(f"{k}={v:g}" for k, v in self.overrides[self.config_index[m]].items())
        return f"{where} seed {self.seeds[m]}".strip()


@jax.jit
def where_seeds(ok: jnp.ndarray, new, old):
    """Per member: new where ok [M], else old (a member that went non-finite keeps its last
    good state). Jitted: one small program instead of an eager op per leaf."""

    def pick(n, o):
        return jnp.where(ok.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)

    return jax.tree_util.tree_map(pick, new, old)


def eval_seed(config: RunConfig, updates: int) -> int:
    """The seed of the evaluation after ``updates`` updates: distinct episodes at every
    evaluation, the same ones again on resume."""
    return (config.seed * 1_000_003 + updates) % (2**31 - 1)


def frozen_flows(pretrained: PretrainedFlow, config: RunConfig):
    """Every member's frozen decoder parameters [M, ...]: flow i for seed index i when there is
    one flow per seed, else the one shared flow, repeated."""
    members = Members.of(config)
    which = members.seed_index if pretrained.num_seeds == config.num_seeds else np.zeros_like(members.seed_index)
    flow_params = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[which], pretrained.params)
    return jax.jit(jax.vmap(pretrained.flow.freeze))(flow_params)


def agent_init(config: RunConfig, pretrained: PretrainedFlow, obs_dim: int) -> tuple[Callable, tuple]:
    """(init, args): ``jax.vmap(init)(*args)`` gives every member's fresh agent state, member m
    from its seed's key and its configuration's hyperparameters."""
    init = agent.make_init(config.agent, pretrained.flow, obs_dim,
                           behaviour_cloning=not config.uses_critics)
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(int(s)), 1)
                      for s in Members.of(config).seeds])
    return init, (keys, agent.stack_hyperparams(config.member_agent_configs()))


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
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Trains every member at once, evaluating and checkpointing (in <workdir>/checkpoints)
    between chunks; ``resume`` continues from the latest checkpoint. Returns the results dict
    (module docstring), ``results_base`` merged in; ``report`` gets it after every evaluation
    (to write it out) and once more at the end. Holds workdir's lock throughout
    (DirectoryBusyError when another process writes there).

    should_stop: asked before every chunk; True ends the stage there with status
    "interrupted" (the chunk before it evaluated and checkpointed as always, so a resume goes
    on exactly as if nothing had happened). A chunk is one jitted call that cannot be cut short:
    a request is honoured within eval_every updates and one evaluation. In a multi-process job
    every process asks at the same chunks (it may be a collective that makes them agree)."""
    with hold_directory(workdir):
        return _train_agent(config, loaded, pretrained, workdir, resume, progress, log,
                            results_base, report, should_stop)


def _train_agent(config, loaded, pretrained, workdir, resume, progress, log, results_base, report,
                 should_stop):
    """train_agent's body, run while it holds the workdir's lock (same arguments)."""
    flow = pretrained.flow
    members = Members.of(config)
    num_members = config.num_members
    frozen = frozen_flows(pretrained, config)
    stats = data.StateStats(mean=pretrained.state_mean, std=pretrained.state_std)
    dataset = normalized(loaded.transitions, stats)
    if config.uses_critics and config.agent.n_step > 1:  # one gamma: a grid cannot sweep it here
        dataset = n_step_transitions(dataset, config.agent.n_step, config.agent.gamma)

    init, init_args = agent_init(config, pretrained, loaded.spec.obs_dim)
    states = jax.jit(jax.vmap(init))(*init_args)
    # Members split over the local devices, the dataset copied once to each (one device:
    # committed).
    mesh = sharding.seed_mesh(num_members)
    if note := sharding.mesh_note(num_members, mesh):
        log(note)
    states, frozen = sharding.shard_seeds((states, frozen), mesh)
    dataset = sharding.replicate(dataset, mesh)
    train_chunk = agent.make_train(config.agent, flow, behaviour_cloning=not config.uses_critics)
    act = agent.make_act(config.agent, flow)
    q_at = jax.jit(jax.vmap(agent.make_q(config.agent, flow))) if config.uses_critics else None
    make_env = lambda i: loaded.spec.make_eval_env()
    # All copies of one evaluation step in one MuJoCo call (None: an env it cannot copy
    # exactly, stepped one by one); made once per size and kept for every evaluation.
    batched_envs = {}

    def batched_env(num_envs: int):
        if num_envs not in batched_envs:
            batched_envs[num_envs] = make_batched_env(loaded.spec, num_envs)
        return batched_envs[num_envs]

    def evaluate(actor_params, updates: int, episodes: int, act_fn=act,
                 critic_params=None) -> tuple[np.ndarray, dict]:
        """(scores [M], diagnostics: per member lists, `episode_diagnostics`; with
        critic_params also the critics' Q at each episode's first step against the discounted
        return the episode then collected)."""
        # Each process rolls out the members it holds; every process gets all the scores.
        # A member plays its seed's episodes with its seed's noise (seed_indices), as it
        # would in a run of its configuration alone.
        indices, (local_actor, local_frozen, local_critic) = sharding.addressable_seeds(
            (actor_params, frozen, critic_params))
        run = evaluation.evaluate_episodes(
            act_fn, local_actor, local_frozen, stats, make_env,
            num_episodes=episodes, seed=eval_seed(config, updates),
            seed_indices=members.seed_index[indices], num_run_seeds=config.num_seeds,
            batched_env=batched_env(len(indices) * episodes), gamma=config.agent.gamma,
        )
        gather = lambda x: sharding.gather_seeds(x, indices, num_members)
        scores = gather(loaded.normalized_score(run.returns).mean(axis=1))  # [M]
        diagnostics = episode_diagnostics(loaded.spec, gather(run.first_reward_steps),
                                          gather(run.final_observations))
        if critic_params is not None:
            start = (run.first_observations - np.asarray(stats.mean)) / np.asarray(stats.std)
            q = q_at(local_critic, jnp.asarray(start, jnp.float32),
                     jnp.asarray(run.first_actions, jnp.float32))
            diagnostics["q_start"] = gather(np.asarray(q).mean(axis=1)).tolist()
            diagnostics["return_start"] = gather(run.discounted_returns.mean(axis=1)).tolist()
        return scores, diagnostics

    # What these agents train from, recorded with every checkpoint: a resume on other data or
    # through another flow is refused (stages.resume).
    inputs = resuming.inputs(loaded, pretrained, config.uses_flow)
    manager = run_checkpoints(workdir)
    restored = restore_newest_intact(manager, workdir, states) if resume else None
    if restored is not None:
        updates, states, record, skipped = restored  # placed like the fresh states
        if "inputs" in record:  # older checkpoints did not record them
            resuming.check_restored(record["inputs"], inputs, workdir)
        for step, why in skipped:  # newer steps that cannot be read: out of the way, kept
            aside = set_aside(manager, workdir, step)
            log(f"skipping the checkpoint at {step} updates, which cannot be read ({why}); "
                f"moved to {aside}")
        curve, failed, baselines = record["curve"], np.array(record["failed"]), record["baselines"]
        # Older checkpoints did not record where a member failed, nor their settings.
        failed_within = record.get("failed_within", [None] * num_members)
        changed = _changed_settings(record.get("settings"), config)
        resumed = [*record.get("resumed", []), {
            "at_updates": updates,
            "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "changed": changed,
        }]
        what = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in (changed or {}).items())
        log(f"resuming from the checkpoint at {updates} updates" + (f" ({what})" if what else ""))
    else:
        updates, curve, failed = 0, [], np.zeros(num_members, bool)
        failed_within, resumed = [None] * num_members, []
        baselines = {"random policy": 0.0}
        if config.uses_flow:
            # Behaviour cloning through the same flow: decode z ~ Uniform(-1, 1)^L, the flow's
            # own model of the data's actions, with no actor at all. (In a grid every
            # configuration's members replay the same seeds: the mean is the seeds' mean.)
            bc_act = lambda _, flow_params, obs, key: jnp.clip(flow.sample(flow_params, key, obs), -1, 1)
            bc, _ = evaluate(frozen, 0, config.eval_episodes, act_fn=bc_act)
            baselines[FLOW_BC] = float(bc.mean())
            log(f"flow behaviour-cloning policy: normalized score {bc.mean():.1f} ± "
                f"{bc[:config.num_seeds].std():.1f}")

    data_stats = data_statistics(config, loaded)
    stopped = False

    def results(done: bool) -> dict[str, Any]:
        status = ("failed" if failed.all() else "interrupted" if stopped else
                  "finished" if done else "running")
        return {
            **(results_base or {}),
            "data": data_stats,
            "status": status,
            "updates": updates,
            **_summaries(config, members, curve, failed, failed_within),
            "baselines": baselines,
            "curve": curve,
            "inputs": {k: inputs[k] for k in ("dataset_sha256", "flow_sha256")},
            **({"resumed": resumed} if resumed else {}),
        }

    bar = _progress_bar(config.num_updates, updates) if progress else None
    while updates < config.num_updates and not failed.all():
        if should_stop():
            stopped = True
            break
        n = _chunk(updates, config)
        start = time.perf_counter()
        new_states, metrics = train_chunk(states, frozen, dataset, n)
        metrics = sharding.to_host(metrics)  # [M, n] each; across hosts, gathered from all
        finite = metrics["finite"].all(axis=1)
        seconds = time.perf_counter() - start
        newly_failed = ~finite & ~failed
        for i in np.flatnonzero(newly_failed):
            log(f"{members.name(i)}: non-finite loss or parameters within updates "
                f"{updates}-{updates + n}; it has failed and is stopped (no score from it from "
                f"now on); the other {'members' if members.num_configs > 1 else 'seeds'} go on")
            failed_within[i] = [updates, updates + n]
        failed |= newly_failed
        # A failed member keeps its last good state: nothing non-finite is saved or rolled out.
        states = where_seeds(~failed, new_states, states)
        updates += n
        # The last evaluation gives the final score: more episodes (final_eval_episodes).
        episodes = config.final_eval_episodes if updates >= config.num_updates else config.eval_episodes
        if failed.all():
            scores, diagnostics = np.full(num_members, np.nan), {}  # nothing left to evaluate
        else:
            scores, diagnostics = evaluate(agent.acting_params(states), updates, episodes,
                                           critic_params=states.critic_params)
        if "q_mean" in metrics:
            diagnostics = {"q_mean": np.asarray(metrics["q_mean"]).mean(axis=1).tolist(), **diagnostics}
        # A failed member's rows describe its frozen last good state: none.
        diagnostics = {k: [None if bad else v for v, bad in zip(values, failed)]
                       for k, values in diagnostics.items()}
        curve.append({
            "updates": updates,
            "eval_seed": eval_seed(config, updates),  # experiments.evaluate --eval_seed redoes it
            "episodes": episodes,
            "scores": [None if bad else float(v) for v, bad in zip(scores, failed)],
            "failed_seeds": members.seeds[failed].tolist(),
            **_mean_std(scores, ~failed),
            "updates_per_second": n / seconds,
            **_metric_means(metrics, ~failed),
            "diagnostics": diagnostics,
            **({"configs": [
                {**_mean_std(scores, ~failed & (members.config_index == c)),
                 **_metric_means(metrics, ~failed & (members.config_index == c))}
                for c in range(members.num_configs)
            ]} if members.num_configs > 1 else {}),
        })
        save_run_checkpoint(manager, updates, states, {
            "curve": curve, "failed": failed.tolist(), "failed_within": failed_within,
            "baselines": baselines, "resumed": resumed, "inputs": inputs,
            "settings": {k: getattr(config, k) for k in RunConfig.RESUMABLE},
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


def data_statistics(config: RunConfig, loaded: data.LoadedDataset) -> dict[str, Any]:
    """What the critics' Q is measured against: the data's mean discounted Monte-Carlo return
    at the agent's gamma (and at every swept gamma), and the reward range."""
    rewards = np.asarray(loaded.transitions.rewards)
    gammas = sorted({c.gamma for c in config.member_agent_configs()} | {config.agent.gamma})
    by_gamma = {g: mean_discounted_return(loaded.transitions, g) for g in gammas}
    out = {
        "gamma": config.agent.gamma,
        "mc_return_mean": by_gamma[config.agent.gamma],
        "reward_mean": float(rewards.mean()),
        "reward_range": [float(rewards.min()), float(rewards.max())],
    }
    if len(gammas) > 1:
        out["mc_return_mean_by_gamma"] = {str(g): v for g, v in by_gamma.items()}
    return out


def episode_diagnostics(spec: data.EnvSpec, first_reward_steps: np.ndarray,
                        final_observations: np.ndarray) -> dict[str, list]:
    """What each member's evaluation episodes did: first_reward_steps [M, E] (-1: none) and
    final_observations [M, E, S] -> per member lists [M]: reached (share of episodes with a
    reward), first_reward_step (mean step of the first one, None when none came), and in a maze
    end_distance (mean final distance to the goal) and end_cells ([[row, col, episodes], ...],
    most visited first)."""
    reached = first_reward_steps >= 0
    out = {
        "reached": reached.mean(axis=1).tolist(),
        "first_reward_step": [float(s[r].mean()) if r.any() else None
                              for s, r in zip(first_reward_steps, reached)],
    }
    if spec.is_maze:
        from lfjax.envs.maze2d import where_episodes_end

        distance, cells = where_episodes_end(spec.maze, final_observations[..., :2])
        out["end_distance"] = distance.mean(axis=1).tolist()
        ends = []
        for member_cells in cells:
            found, counts = np.unique(member_cells, axis=0, return_counts=True)
            order = np.argsort(-counts, kind="stable")
            ends.append([[int(found[i][0]), int(found[i][1]), int(counts[i])] for i in order])
        out["end_cells"] = ends
    return out


def _chunk(updates: int, config: RunConfig) -> int:
    """Updates in the chunk that starts after ``updates``: up to the next multiple of
    eval_every (or num_updates). From 0 that is eval_every each, as it always was; a run
    resumed with another eval_every or a longer num_updates evaluates at multiples of the new
    eval_every again after one shorter chunk. (Chunk boundaries draw the training keys: a
    chunk of 2k updates is not two of k, so a run extended from an end that was not a multiple
    of eval_every, or whose eval_every changed, trains as its recorded history says, not as a
    run never resumed.)"""
    return min(config.eval_every - updates % config.eval_every, config.num_updates - updates)


def _changed_settings(saved: dict | None, config: RunConfig) -> dict[str, list] | None:
    """{setting: [before, now]} of the RESUMABLE settings that differ from those a checkpoint
    was saved with (None when it did not record them)."""
    if saved is None:
        return None
    return {k: [saved[k], getattr(config, k)] for k in RunConfig.RESUMABLE
            if k in saved and saved[k] != getattr(config, k)}


def _mean_std(scores: Any, ok: np.ndarray) -> dict[str, float | None]:
    """Mean and std of the scores [M] of the members in ok (None when there are none)."""
    good = np.asarray([np.nan if v is None else v for v in scores], float)[ok]
    if not good.size:
        return {"mean": None, "std": None}
    return {"mean": float(good.mean()), "std": float(good.std())}


def _metric_means(metrics: dict[str, np.ndarray], ok: np.ndarray) -> dict[str, float | None]:
    """Each training metric's mean over a chunk's updates and the members in ok."""
    return {k: float(np.mean(np.asarray(v)[ok])) if ok.any() else None
            for k, v in metrics.items() if k != "finite"}


def _summaries(config: RunConfig, members: Members, curve: list[dict], failed: np.ndarray,
               failed_within: list) -> dict:
    """final, members and summary (module docstring) from the curve so far."""
    final = curve[-1]["scores"] if curve else [None] * config.num_members
    per_member = [
        {
            "config": members.overrides[members.config_index[m]],
            "seed": int(members.seeds[m]),
            "scores": [point["scores"][m] for point in curve],
            "final": final[m],
            "failed": bool(failed[m]),
            "failed_within_updates": failed_within[m],
        }
        for m in range(config.num_members)
    ]
    summary = []
    for c, overrides in enumerate(members.overrides):
        mine = members.config_index == c
        summary.append({
            "config": overrides,
            **_mean_std(final, mine & ~failed),
            "scores": [final[m] for m in np.flatnonzero(mine)],
            "failed_seeds": members.seeds[mine & failed].tolist(),
        })
    ranked = sorted(summary, key=lambda s: -np.inf if s["mean"] is None else -s["mean"])
    return {
        "final": {
            "scores": list(final),
            **_mean_std(final, ~failed),
            "failed_seeds": members.seeds[failed].tolist(),
            "failed_members": np.flatnonzero(failed).tolist(),
            "failures": [{"seed": int(members.seeds[m]), "within_updates": failed_within[m]}
                         for m in np.flatnonzero(failed)],
        },
        "members": per_member,
        "summary": ranked,
        "best": ranked[0]["config"] if members.num_configs > 1 else None,
    }


def load_agents(config: RunConfig, pretrained: PretrainedFlow, obs_dim: int,
                workdir: pathlib.Path, step: int | None = None,
                log: Log = print) -> tuple[int, agent.TrainState]:
    """(step, the member-stacked train states [M, ...]) saved by `train_agent` in workdir at
    ``step`` (default: the newest that reads back whole; the run keeps the last two, and a
    newer one that cannot be read is named in ``log``). ValueError naming the steps there when
    ``step`` is not one of them; UnreadableCheckpointError when ``step`` (or, by default,
    every step) cannot be read."""
    manager = run_checkpoints(workdir)
    steps = sorted(manager.all_steps())
    if not steps or (step is not None and step not in steps):
        raise ValueError(
            f"no checkpoint {step} in {workdir / 'checkpoints'} (it keeps the last two "
            f"evaluations): choose --step from {steps}" if steps else
            f"{workdir} has no checkpoint yet: the run saves one at each evaluation"
        )
    init, args = agent_init(config, pretrained, obs_dim)
    like = jax.eval_shape(jax.vmap(init), *args)
    if step is not None:
        try:
            return step, restore_run_states(workdir, step, like)
        except UnreadableCheckpointError as e:
            others = [s for s in steps if s != step]
            raise UnreadableCheckpointError(
                f"checkpoint {step} in {workdir / 'checkpoints'} cannot be read ({e.reason}); it may "
                f"be truncated or corrupt" + (f": choose --step from {others}" if others else ""),
                e.directory, e.reason,
            ) from e
    restored = restore_newest_intact(manager, workdir, like)
    for skipped, why in restored.skipped:
        log(f"note: the checkpoint at {skipped} updates cannot be read ({why}): evaluating the "
            f"one at {restored.step} updates, the newest intact one")
    return restored.step, restored.states


def evaluate_agents(
    config: RunConfig,
    spec: data.EnvSpec,
    pretrained: PretrainedFlow,
    actor_params: Any,
    *,
    num_episodes: int,
    seed: int = 0,
    deterministic: bool = False,
    member_indices: Any = None,
) -> np.ndarray:
    """Undiscounted returns [n, num_episodes] of the actors of the members ``member_indices``
    (default: all M; actor params [M, ...]) acting through the frozen flow in spec's
    evaluation env, as the run's own evaluations do (with ``seed`` an evaluation's eval_seed,
    the same episodes and noise for each member's seed). deterministic acts with tanh(mean)
    instead of a sample. Leave failed members out: a member with non-finite parameters raises
    NonFiniteParametersError."""
    act = agent.make_act(config.agent, pretrained.flow, deterministic=deterministic)
    stats = data.StateStats(mean=pretrained.state_mean, std=pretrained.state_std)
    members = Members.of(config)
    indices = (np.arange(config.num_members) if member_indices is None
               else np.asarray(member_indices, int))
    take = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x)[indices], tree)
    batched_env = make_batched_env(spec, len(indices) * num_episodes)
    try:
        return evaluation.evaluate(
            act, take(actor_params), take(frozen_flows(pretrained, config)), stats,
            lambda i: spec.make_eval_env(), num_episodes=num_episodes, seed=seed,
            seed_indices=members.seed_index[indices], num_run_seeds=config.num_seeds,
            batched_env=batched_env,
        )
    finally:
        if batched_env is not None:
            batched_env.close()


def _progress_bar(total: int, initial: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="awac", unit="upd", file=sys.stdout,
                dynamic_ncols=True)
