"""The stages of a CNF run, shared by ``experiments.run`` and ``experiments.pretrain_flow``.

Everything with side effects lives here: dataset generation, progress bars, checkpoints,
evaluation rollouts, result files. The training itself is the pure, jitted code of lfjax.
"""

import csv
import dataclasses
import importlib.metadata
import os
import pathlib
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from experiments import hosts
from lfjax import agent, data, evaluation, sharding
from lfjax.checkpointing import CheckpointError, write_json
from lfjax.config import RunConfig
from lfjax.flow_checkpoint import PretrainedFlow, load_pretrained_flow, save_pretrained_flow

Log = Callable[[str], None]


class UserError(Exception):
    """A mistake the user can fix; printed as one or two lines, exit status 2."""


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def start_cli(argv: list[str]) -> int | None:
    """The common start of the command-line entry points: quiets orbax's logging and refuses
    positional arguments (absl would silently ignore them). Returns an exit status to stop
    with, or None to go on."""
    from lfjax.checkpointing import quiet_orbax

    quiet_orbax()
    if len(argv) > 1:
        return fail(f"unexpected arguments {argv[1:]}; flags look like --env=maze2d-umaze")
    return None


def log_line(message: str) -> None:
    tqdm.write(message, file=sys.stdout)


def quiet(message: str) -> None:
    """The log of processes other than 0 in a multi-process job: process 0 speaks for all."""


# What a command reports as one line on stderr with exit status 2 (the user can fix it).
USER_ERRORS = (UserError, CheckpointError, ValueError)


def join_processes(distributed: bool) -> None:
    """Joins the multi-process job when --distributed (or LFJAX_DISTRIBUTED=1) asks for it.
    Must come before anything touches a device. UserError when the job is not described."""
    if sharding.distributed_requested(distributed or None):
        # Said first: joining blocks until every process is there, and if the coordinator
        # never answers JAX ends the process itself after its timeout (5 min).
        address = os.environ.get("JAX_COORDINATOR_ADDRESS")
        process, count = os.environ.get("LFJAX_PROCESS_ID"), os.environ.get("LFJAX_NUM_PROCESSES")
        where = f"at {address}" if address else "(coordinator from the cluster environment)"
        who = f" as process {process} of {count}" if process and count else ""
        print(f"joining the multi-process job {where}{who}; it starts when every process has "
              "joined", file=sys.stderr, flush=True)
    try:
        sharding.maybe_initialize_distributed(distributed or None)
    except ValueError as e:
        raise UserError(f"--distributed: {e}") from e


def job_output(progress: bool) -> tuple[Log, bool]:
    """This process's log and whether it shows progress bars: process 0 speaks for the job."""
    if hosts.is_leader():
        return log_line, progress
    return quiet, False


def check_writable(directory: pathlib.Path, flag: str) -> None:
    """UserError unless ``directory`` exists as a writable directory or can be created;
    creates nothing (a run refused later must leave no trace)."""
    existing = directory.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag}={directory}: {existing} is a file, not a directory; choose another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag}={directory}: {existing} is not writable; choose another {flag}")


def run_stages(stages: Callable[[], int], *, after_lost_contact: str) -> int:
    """Runs a command's stages and returns its exit status. A user-facing error, in this or any
    other process of the job, is one line on stderr and status 2; lost contact with another
    process is one line (with ``after_lost_contact``: what is saved, how to go on) and status 1."""
    try:
        return stages()
    except (*USER_ERRORS, hosts.OtherProcessError) as e:
        return fail(str(e))
    except OSError as e:  # a full disk, a directory that vanished: the environment, not a bug
        return fail(f"{e}; check the path, its permissions and the free disk space (files "
                    "written before this are intact)")
    except jax.errors.JaxRuntimeError as e:
        if jax.process_count() == 1:
            raise  # one process: a bug, shown whole
        hosts.leave_after_lost_contact(e, after_lost_contact)


def versions() -> dict[str, str]:
    names = ["lfjax", "jax", "jaxlib", "flax", "optax", "distrax", "chex", "orbax-checkpoint",
             "minari", "gymnasium", "gymnasium-robotics", "mujoco", "numpy"]
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["backend"] = jax.default_backend()
    out["devices"] = str(jax.devices())
    out["processes"] = str(jax.process_count())
    return out


# ----- dataset ----------------------------------------------------------------------------


def prepare_dataset(env: str, *, generate_if_missing: bool, log: Log = log_line) -> data.LoadedDataset:
    """Loads the dataset, generating a maze2d one first when it is missing."""
    try:
        spec = data.get_env_spec(env)
    except data.UnknownEnvError as e:
        raise UserError(str(e)) from e
    try:
        return data.load_dataset(env)
    except data.MissingDatasetError as e:
        if not (generate_if_missing and spec.generated_by):
            raise UserError(str(e)) from e
        log(f"dataset for {env} not found under {data.datasets_root()}; generating it now "
            f"(same as `{spec.generated_by}`)")
        if note := data.outdated_note(spec):
            log(note)
        data.generate_dataset(env)
    except data.DatasetError as e:
        raise UserError(str(e)) from e
    try:
        return data.load_dataset(env)
    except data.DatasetError as e:
        raise UserError(str(e)) from e


def normalized(transitions: data.Transitions, stats: data.StateStats) -> data.Transitions:
    """The dataset every network sees: observations normalized once, on the device."""
    return transitions.replace(
        observations=data.normalize_states(transitions.observations, stats),
        next_observations=data.normalize_states(transitions.next_observations, stats),
    )


def shared_dataset(env: str, *, generate_if_missing: bool, log: Log = log_line) -> data.LoadedDataset:
    """prepare_dataset in every process of the job, process 0 first (the others may then find
    the dataset it generated on a shared disk), then a check that all loaded the same data."""
    loaded = hosts.together(
        lambda: prepare_dataset(env, generate_if_missing=generate_if_missing, log=log),
        USER_ERRORS, leader_first=True,
    )
    check_same_dataset(loaded)
    return loaded


def check_same_dataset(loaded: data.LoadedDataset) -> None:
    """Across processes: every one must train on the same data (ValueError otherwise)."""
    if jax.process_count() == 1:
        return  # nothing to compare, and no need to copy the whole dataset for a checksum
    t = loaded.transitions
    content = b"".join(
        np.ascontiguousarray(np.asarray(x)).tobytes()
        for x in (t.observations, t.actions, t.rewards, t.terminals)
    )
    hosts.check_same(
        f"the dataset {loaded.minari_id}",
        content,
        f"every host must load the same data: copy {data.datasets_root()} from process 0's host "
        "to the others, or point MINARI_DATASETS_PATH at a directory they share",
    )


def dataset_identity(loaded: data.LoadedDataset) -> dict[str, Any]:
    """What makes two loads the same data (used to decide whether a saved flow fits)."""
    return {
        "minari_id": loaded.minari_id,
        "num_transitions": int(loaded.transitions.actions.shape[0]),
        "generation": loaded.metadata,
    }


# ----- flow -------------------------------------------------------------------------------


def flow_stage(
    config: RunConfig,
    loaded: data.LoadedDataset,
    flow_dir: pathlib.Path,
    *,
    progress: bool = True,
    log: Log = log_line,
) -> PretrainedFlow:
    """Reuses the flow in ``flow_dir`` when it was made from the same dataset, flow config,
    seeds; otherwise pretrains ``config.num_flows`` flows (one per seed, or one shared) and
    saves them there."""
    from experiments.pretrain_flow import pretrain

    num_epochs = config.flow.num_epochs or loaded.spec.flow_epochs
    wanted = {
        "dataset": dataset_identity(loaded),
        "flow_config": dataclasses.asdict(config.flow),
        "num_epochs": num_epochs,
        "seed": config.seed,
    }
    reused = _reusable_flow(flow_dir, wanted, config.num_flows, log)
    # Across processes all must take the same branch (each reads flow_dir for itself), and
    # none may read it while process 0 writes a new flow there.
    hosts.check_same(f"whether {flow_dir} holds a usable flow", bytes([reused is not None]),
                     "the processes must see the same --flow_dir")
    hosts.barrier("lfjax-flow-checked")
    if reused is not None:
        return reused

    stats = loaded.state_stats
    states = data.normalize_states(loaded.transitions.observations, stats)
    log(f"pretraining {config.num_flows} flow(s) on {loaded.minari_id}: {num_epochs} epochs, "
        f"batch {config.flow.batch_size}, {config.flow.num_blocks} blocks")
    out = pretrain(
        config.flow,
        loaded.transitions.actions,
        states,
        num_epochs=num_epochs,
        num_seeds=config.num_flows,
        seed=config.seed,
        progress=progress,
        log=log,
    )
    info = {
        **wanted,
        "history": out.history,
        "best_epoch": out.best_epoch.tolist(),
        "best_val_nll": out.best_val_nll.tolist(),
        "seconds": out.seconds,
    }
    save_pretrained_flow(flow_dir, out.flow, out.best_params, stats.mean, stats.std, info)
    log(f"flow saved to {flow_dir}: best validation NLL {out.best_val_nll.round(4).tolist()} "
        f"at epochs {out.best_epoch.tolist()} ({out.seconds:.0f} s)")
    # What was just saved, without reading it back: the info goes through JSON as a reload would.
    return PretrainedFlow(out.flow, out.best_params, stats.mean, stats.std, _jsonable(info))


def _reusable_flow(flow_dir: pathlib.Path, wanted: dict, num_flows: int, log: Log) -> PretrainedFlow | None:
    """The flow saved in flow_dir when it was made with the wanted settings, else None."""
    if not (flow_dir / "flow.json").exists():
        return None
    try:
        saved = load_pretrained_flow(flow_dir)
    except CheckpointError as e:
        log(f"saved flow in {flow_dir} is unusable ({e}); pretraining a new one")
        return None
    same = all(_jsonable(saved.info.get(k)) == _jsonable(v) for k, v in wanted.items())
    if same and saved.num_seeds == num_flows:
        log(f"reusing the pretrained flow in {flow_dir} "
            f"(best validation NLL per seed: {saved.info['best_val_nll']})")
        return saved
    log(f"the flow in {flow_dir} was made with other settings; pretraining a new one")
    return None


def _jsonable(x):
    """Round-trips through JSON types, so saved and fresh values compare equal."""
    import json

    return json.loads(json.dumps(x))


# ----- results ----------------------------------------------------------------------------


def write_outputs(workdir: pathlib.Path, results: dict[str, Any]) -> None:
    """results.json, curve.csv and curve.png; each written atomically or replaced whole.
    In a multi-process job only process 0 writes them."""
    if not hosts.is_leader():
        return
    write_json(workdir / "results.json", results)
    curve = results["curve"]
    tmp = workdir / ".curve.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        num_seeds = len(results["config"]["seeds"])
        writer.writerow(["updates", "mean", "std", *[f"seed_{s}" for s in results["config"]["seeds"]]])
        for point in curve:
            writer.writerow([point["updates"], point["mean"], point["std"], *point["scores"][:num_seeds]])
    tmp.replace(workdir / "curve.csv")
    plot_curves(workdir / "curve.png", results)


def plot_curves(path: pathlib.Path, results: dict[str, Any]) -> None:
    """Normalized score vs updates (mean ± std over seeds), and the flow's validation NLL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_score, ax_nll) = plt.subplots(1, 2, figsize=(11, 4))
    curve = results["curve"]
    if curve:
        x = np.array([p["updates"] for p in curve])
        mean = np.array([p["mean"] for p in curve])
        std = np.array([p["std"] for p in curve])
        ax_score.plot(x, mean, label=f"latent AWAC ({len(curve[0]['scores'])} seeds)")
        ax_score.fill_between(x, mean - std, mean + std, alpha=0.25)
    for name, value in results.get("baselines", {}).items():
        ax_score.axhline(value, linestyle="--", linewidth=1, color="gray" if "random" in name else "C1", label=name)
    ax_score.set_xlabel("updates")
    ax_score.set_ylabel("normalized score")
    ax_score.set_title(results["config"]["env"])
    ax_score.legend(loc="best", fontsize=8)
    history = results.get("flow", {}).get("history", [])
    if history:
        epochs = [h["epoch"] for h in history]
        val = np.array([h["val_nll"] for h in history])
        train = np.array([h["train_nll"] for h in history])
        ax_nll.plot(epochs, val.mean(1), marker="o", label="validation")
        ax_nll.fill_between(epochs, val.min(1), val.max(1), alpha=0.25)
        ax_nll.plot(epochs, train.mean(1), marker=".", linestyle="--", label="train")
        ax_nll.legend(fontsize=8)
    ax_nll.set_xlabel("flow epoch")
    ax_nll.set_ylabel("NLL (nats per action)")
    ax_nll.set_title("flow pretraining")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


# ----- agent ------------------------------------------------------------------------------

CHECKPOINTS = "checkpoints"


def checkpoint_manager(workdir: pathlib.Path):
    """The orbax manager of <workdir>/checkpoints: one step per evaluation, the last two kept."""
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
    return ocp.CheckpointManager((workdir / CHECKPOINTS).absolute(), options=options)


def _save_checkpoint(manager, step: int, states, progress_record: dict) -> None:
    import orbax.checkpoint as ocp

    # Composite: the agent states and the curve so far commit together, or not at all.
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(states), progress=ocp.args.JsonSave(progress_record)
        ),
    )
    manager.wait_until_finished()


def _restore_checkpoint(manager, workdir: pathlib.Path, like) -> tuple[int, Any, dict] | None:
    import orbax.checkpoint as ocp

    from lfjax.checkpointing import restore_tree

    step = manager.latest_step()
    if step is None:
        return None
    step_dir = workdir / CHECKPOINTS / str(step)
    states = restore_tree(step_dir / "state", like)  # refuses mismatched shapes/structure
    try:
        progress_record = manager.restore(
            step, args=ocp.args.Composite(progress=ocp.args.JsonRestore())
        )["progress"]
    except Exception as e:
        raise CheckpointError(f"checkpoint {step_dir} has no readable progress record ({e})") from e
    return step, states, progress_record


@jax.jit
def _where_seeds(ok: jnp.ndarray, new, old):
    """Per seed: new where ok [N], else old (a seed that went non-finite keeps its last good
    state). Jitted: one small program instead of an eager op per leaf."""

    def pick(n, o):
        return jnp.where(ok.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)

    return jax.tree_util.tree_map(pick, new, old)


def _eval_seed(config: RunConfig, updates: int) -> int:
    # Distinct episodes at every evaluation, reproducible on resume.
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
    init = agent.make_init(config.agent, pretrained.flow, obs_dim)
    seeds = [config.seed + i for i in range(config.num_seeds)]
    return init, jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), 1) for s in seeds])


def agent_stage(
    config: RunConfig,
    loaded: data.LoadedDataset,
    pretrained: PretrainedFlow,
    workdir: pathlib.Path,
    *,
    resume: bool,
    progress: bool = True,
    log: Log = log_line,
    results_base: dict[str, Any],
) -> dict[str, Any]:
    """Trains latent AWAC for every seed at once, evaluating and checkpointing between chunks.
    Returns the results dict (also written to the workdir after every evaluation)."""
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
    train_chunk = agent.make_train(config.agent, dataset, flow)
    act = agent.make_act(config.agent, flow)
    make_env = lambda i: loaded.spec.make_eval_env()

    def evaluate(actor_params, updates: int, act_fn=act) -> np.ndarray:
        # Each process rolls out the seeds it holds; every process gets all the scores.
        indices, (local_actor, local_frozen) = sharding.addressable_seeds((actor_params, frozen))
        returns = evaluation.evaluate(
            act_fn, local_actor, local_frozen, stats, make_env,
            num_episodes=config.eval_episodes, seed=_eval_seed(config, updates),
            seed_indices=indices, num_run_seeds=num_seeds,
        )
        scores = loaded.normalized_score(returns).mean(axis=1)
        return sharding.gather_seeds(scores, indices, num_seeds)  # [N]

    manager = checkpoint_manager(workdir)
    restored = _restore_checkpoint(manager, workdir, states) if resume else None
    if restored is not None:
        updates, states, record = restored  # placed like the fresh states
        curve, failed, baselines = record["curve"], np.array(record["failed"]), record["baselines"]
        log(f"resuming from the checkpoint at {updates} updates")
    else:
        updates, curve, failed = 0, [], np.zeros(num_seeds, bool)
        # Behaviour cloning through the same flow: decode z ~ Uniform(-1, 1)^L, the flow's
        # own model of the data's actions, with no actor at all.
        bc_act = lambda _, flow_params, obs, key: jnp.clip(flow.sample(flow_params, key, obs), -1, 1)
        bc = evaluate(frozen, 0, act_fn=bc_act)
        baselines = {"random policy": 0.0, "flow BC (z ~ U)": float(bc.mean())}
        log(f"flow behaviour-cloning policy: normalized score {bc.mean():.1f} ± {bc.std():.1f}")

    def results(done: bool) -> dict[str, Any]:
        final = np.array(curve[-1]["scores"]) if curve else np.full(num_seeds, np.nan)
        good = final[~failed] if (~failed).any() else final
        return {
            **results_base,
            "status": "finished" if done else "running",
            "updates": updates,
            "final": {
                "scores": final.tolist(),
                "mean": float(np.mean(good)),
                "std": float(np.std(good)),
                "failed_seeds": [seeds[i] for i in np.flatnonzero(failed)],
            },
            "baselines": baselines,
            "curve": curve,
        }

    bar = tqdm(total=config.num_updates, initial=updates, desc="awac", unit="upd",
               disable=not progress, file=sys.stdout, dynamic_ncols=True)
    while updates < config.num_updates:
        n = min(config.eval_every, config.num_updates - updates)
        start = time.perf_counter()
        new_states, metrics = train_chunk(states, frozen, n)
        metrics = sharding.to_host(metrics)  # [N, n] each; across hosts, gathered from all
        finite = metrics["finite"].all(axis=1)
        seconds = time.perf_counter() - start
        newly_failed = ~finite & ~failed
        for i in np.flatnonzero(newly_failed):
            log(f"seed {seeds[i]}: non-finite loss or parameters within updates "
                f"{updates}-{updates + n}; keeping its last good state (from update {updates}) "
                "and stopping it; the other seeds go on")
        failed |= newly_failed
        states = _where_seeds(~failed, new_states, states)
        updates += n
        scores = evaluate(states.actor_params, updates)
        means = {k: float(np.mean(np.asarray(v)[~failed])) if (~failed).any() else float("nan")
                 for k, v in metrics.items() if k != "finite"}
        curve.append({
            "updates": updates,
            "eval_seed": _eval_seed(config, updates),  # experiments.evaluate --eval_seed redoes it
            "scores": scores.tolist(),
            "mean": float(scores[~failed].mean() if (~failed).any() else scores.mean()),
            "std": float(scores[~failed].std() if (~failed).any() else scores.std()),
            "updates_per_second": n / seconds,
            **means,
        })
        _save_checkpoint(manager, updates, states,
                         {"curve": curve, "failed": failed.tolist(), "baselines": baselines})
        write_outputs(workdir, results(done=updates >= config.num_updates))
        bar.update(n)
        bar.set_postfix(score=f"{curve[-1]['mean']:.1f}±{curve[-1]['std']:.1f}",
                        **{"upd/s": f"{n / seconds:.0f}"})
    bar.close()
    final = results(done=True)
    write_outputs(workdir, final)
    return final
