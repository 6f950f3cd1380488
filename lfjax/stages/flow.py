"""The flow stage: the pretrained flow of a run, reused from its directory when it was made
from the same dataset with the same settings and seed, else pretrained and saved there. The
pretraining checkpoints every epoch (<flow_dir>/progress, `lfjax.checkpoints.FlowProgress`), so
a killed one resumes. The baselines that act in action space (``--algo=awac``, ``bc``) get the
identity decoder instead (`no_flow`).

Readers of a flow directory share its lock and a writer holds it alone
(`lfjax.checkpoints.locks`): no run reads a flow that another is replacing, and two processes
never pretrain into one directory.
"""

import dataclasses
import pathlib
from typing import Callable

from lfjax import data, pretraining, processes
from lfjax.agent import IdentityDecoder
from lfjax.checkpoints import (
    CheckpointError,
    FlowProgress,
    PartialFlowError,
    PretrainedFlow,
    as_json,
    hold_directory,
    load_pretrained_flow,
    save_pretrained_flow,
)
from lfjax.configs import RunConfig
from lfjax.stages.dataset import dataset_identity

Log = Callable[[str], None]


def load_or_pretrain(
    config: RunConfig,
    loaded: data.LoadedDataset,
    flow_dir: pathlib.Path,
    *,
    resume: bool = False,
    progress: bool = False,
    log: Log = print,
    should_stop: Callable[[], bool] | None = None,
) -> PretrainedFlow:
    """Reuses the flow in ``flow_dir`` when it was made from the same dataset, flow config,
    epochs and seed; otherwise pretrains ``config.num_flows`` flows (one per seed, or one
    shared) on the dataset's actions and normalized states and saves them there with the
    state statistics. Returns the flow, params with a leading seed axis [num_flows, ...].

    resume: continue an unfinished pretraining of this flow from its last epoch; without it,
    finding one raises PartialFlowError. should_stop: asked after every epoch (its checkpoint
    saved); True raises pretraining.PretrainingStopped, the progress kept for a resume. Raises DirectoryBusyError when another process
    writes in flow_dir, and pretraining.FlowDivergedError (nothing saved) when a flow never
    reaches a finite validation NLL.
    """
    num_epochs = config.flow.num_epochs or loaded.spec.flow_epochs
    wanted = {
        "dataset": dataset_identity(loaded),
        "flow_config": dataclasses.asdict(config.flow),
        "num_epochs": num_epochs,
        "seed": config.seed,
    }
    with hold_directory(flow_dir, shared=True):
        reused = _agreed_flow(flow_dir, wanted, config.num_flows, log)
    if reused is not None:
        return reused
    with hold_directory(flow_dir):
        # Again, alone now: another process may have saved this very flow in between.
        reused = _agreed_flow(flow_dir, wanted, config.num_flows, log, say_why=False)
        if reused is not None:
            return reused
        return _pretrain_and_save(config, loaded, flow_dir, wanted, resume, progress, log, should_stop)


def _agreed_flow(flow_dir: pathlib.Path, wanted: dict, num_flows: int, log: Log,
                 say_why: bool = True) -> PretrainedFlow | None:
    """_reusable_flow, the same branch in every process of the job."""
    reused = _reusable_flow(flow_dir, wanted, num_flows, log if say_why else lambda _: None)
    if reused is not None and not say_why:
        log(f"reusing the pretrained flow in {flow_dir}, saved meanwhile by another process")
    # Across processes all must take the same branch (each reads flow_dir for itself).
    processes.check_same(f"whether {flow_dir} holds a usable flow", bytes([reused is not None]),
                         "the processes must see the same --flow_dir")
    processes.barrier("lfjax-flow-checked")
    return reused


def _pretrain_and_save(config: RunConfig, loaded: data.LoadedDataset, flow_dir: pathlib.Path,
                       wanted: dict, resume: bool, progress: bool, log: Log,
                       should_stop: Callable[[], bool] | None) -> PretrainedFlow:
    """Pretrains (continuing a matching unfinished pretraining when ``resume``) and saves; the
    caller holds flow_dir's lock."""
    checkpoints = FlowProgress(flow_dir, {**wanted, "num_flows": config.num_flows})
    latest = processes.together(checkpoints.latest, (CheckpointError,))
    if latest is not None and not latest[1]:
        log(f"discarding the unfinished pretraining in {checkpoints.directory} (epoch "
            f"{latest[0]}, other data or settings)")
        checkpoints.discard()
    elif latest is not None and not resume:
        raise PartialFlowError(
            f"{flow_dir} holds an unfinished pretraining of this flow ({latest[0]} of "
            f"{wanted['num_epochs']} epochs, in {checkpoints.directory}); pass --resume to "
            f"continue it, or delete {checkpoints.directory} to start over"
        )
    stats = loaded.state_stats
    states = data.normalize_states(loaded.transitions.observations, stats)
    log(f"pretraining {config.num_flows} flow(s) on {loaded.minari_id}: {wanted['num_epochs']} "
        f"epochs, batch {config.flow.batch_size}, {config.flow.num_blocks} blocks")
    try:
        out = pretraining.pretrain(
            config.flow,
            loaded.transitions.actions,
            states,
            num_epochs=wanted["num_epochs"],
            num_seeds=config.num_flows,
            seed=config.seed,
            progress=progress,
            log=log,
            checkpoints=checkpoints,
            should_stop=should_stop,
        )
    except pretraining.FlowDivergedError:
        checkpoints.discard()  # resuming would only diverge again, identically
        raise
    info = {
        **wanted,
        "history": out.history,
        "best_epoch": out.best_epoch.tolist(),
        "best_val_nll": out.best_val_nll.tolist(),
        "seconds": out.seconds,
    }
    save_pretrained_flow(flow_dir, out.flow, out.best_params, stats.mean, stats.std, info)
    checkpoints.discard()  # after flow.json: a kill in between resumes at the last epoch
    log(f"flow saved to {flow_dir}: best validation NLL {[round(float(x), 4) for x in out.best_val_nll]} "
        f"at epochs {out.best_epoch.tolist()} ({out.seconds:.0f} s)")
    # What was just saved, without reading it back: the info goes through JSON as a reload would.
    return PretrainedFlow(out.flow, out.best_params, stats.mean, stats.std, as_json(info))


def no_flow(loaded: data.LoadedDataset) -> PretrainedFlow:
    """What an agent that acts in action space decodes through: the identity, with the
    dataset's state statistics (the agent's networks still see normalized states)."""
    decoder = IdentityDecoder(loaded.spec.action_dim)
    stats = loaded.state_stats
    return PretrainedFlow(decoder, decoder.params(1), stats.mean, stats.std, {})


def _reusable_flow(flow_dir: pathlib.Path, wanted: dict, num_flows: int, log: Log) -> PretrainedFlow | None:
    """The flow saved in flow_dir when it was made with the wanted settings, else None."""
    if not (flow_dir / "flow.json").exists():
        return None
    try:
        saved = load_pretrained_flow(flow_dir)
    except CheckpointError as e:
        log(f"saved flow in {flow_dir} is unusable ({e}); pretraining a new one")
        return None
    same = all(as_json(saved.info.get(k)) == as_json(v) for k, v in wanted.items())
    if same and saved.num_seeds == num_flows:
        log(f"reusing the pretrained flow in {flow_dir} "
            f"(best validation NLL per seed: {[round(x, 4) for x in saved.info['best_val_nll']]})")
        return saved
    log(f"the flow in {flow_dir} was made with other settings; pretraining a new one")
    return None
