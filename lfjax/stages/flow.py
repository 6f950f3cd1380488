"""The flow stage: the pretrained flow of a run, reused from its directory when it was made
from the same dataset with the same settings and seed, else pretrained and saved there. The
pretraining checkpoints every epoch (<flow_dir>/progress, `lfjax.checkpoints.FlowProgress`), so
a killed one resumes. The baselines that act in action space (``--algo=awac``, ``bc``) get the
identity decoder instead (`no_flow`).

Readers of a flow directory share its lock and a writer holds it alone
(`lfjax.checkpoints.locks`): no run reads a flow that another is replacing, and two processes
never pretrain into one directory. A flow made otherwise is replaced only where the caller says
the directory is its own (``replace``): a shared one may hold another run's flow, whose agents
act in its latent space (`OtherFlowError`).
"""

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
from lfjax.stages.resume import differences

Log = Callable[[str], None]


class OtherFlowError(CheckpointError):
    """The flow directory holds a finished flow made from other data or with other settings,
    and the caller did not let the stage replace it; the message names what differs and the
    ways on."""


def load_or_pretrain(
    config: RunConfig,
    loaded: data.LoadedDataset,
    flow_dir: pathlib.Path,
    *,
    resume: bool = False,
    replace: bool = True,
    progress: bool = False,
    log: Log = print,
    should_stop: Callable[[], bool] | None = None,
) -> PretrainedFlow:
    """Reuses the flow in ``flow_dir`` when it was made from the same dataset, flow config,
    epochs and seed; otherwise pretrains ``config.num_flows`` flows (one per seed, or one
    shared) on the dataset's actions and normalized states and saves them there with the
    state statistics. Returns the flow, params with a leading seed axis [num_flows, ...].

    resume: continue an unfinished pretraining of this flow from its last epoch; without it,
    finding one raises PartialFlowError. replace: a finished flow made otherwise in flow_dir is
    replaced (the run's own directory); False raises OtherFlowError instead, before anything
    is written (a directory shared between runs: another run's agents decode through it).
    should_stop: asked after every epoch (its checkpoint saved); True raises
    pretraining.PretrainingStopped, the progress kept for a resume. Raises DirectoryBusyError
    when another process writes in flow_dir, and pretraining.FlowDivergedError (nothing saved)
    when a flow never reaches a finite validation NLL.
    """
    wanted = _wanted(config, loaded)
    with hold_directory(flow_dir, shared=True):
        reused = _agreed_flow(flow_dir, wanted, config.num_flows, replace, log)
    if reused is not None:
        return reused
    with hold_directory(flow_dir):
        # Again, alone now: another process may have saved this very flow in between.
        reused = _agreed_flow(flow_dir, wanted, config.num_flows, replace, log, say_why=False)
        if reused is not None:
            return reused
        return _pretrain_and_save(config, loaded, flow_dir, wanted, resume, progress, log, should_stop)


def check_not_other(config: RunConfig, loaded: data.LoadedDataset, flow_dir: pathlib.Path) -> None:
    """OtherFlowError when flow_dir holds a finished flow made otherwise: what
    ``load_or_pretrain(..., replace=False)`` raises, for a caller to ask before it writes
    anything of its own. Reads flow_dir under its shared lock; writes nothing."""
    with hold_directory(flow_dir, shared=True):
        _agreed_flow(flow_dir, _wanted(config, loaded), config.num_flows, False, lambda _: None)


def _wanted(config: RunConfig, loaded: data.LoadedDataset) -> dict:
    """What a saved flow must have been made with to be reused (its flow.json records it)."""
    return {
        "dataset": dataset_identity(loaded),
        "flow_config": config.flow.record(),
        "num_epochs": config.flow.num_epochs or loaded.spec.flow_epochs,
        "seed": config.seed,
    }


def _agreed_flow(flow_dir: pathlib.Path, wanted: dict, num_flows: int, replace: bool, log: Log,
                 say_why: bool = True) -> PretrainedFlow | None:
    """_reusable_flow, the same branch in every process of the job."""
    reused = processes.together(
        lambda: _reusable_flow(flow_dir, wanted, num_flows, replace, log if say_why else lambda _: None),
        (OtherFlowError,))
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


def _reusable_flow(flow_dir: pathlib.Path, wanted: dict, num_flows: int, replace: bool,
                   log: Log) -> PretrainedFlow | None:
    """The flow saved in flow_dir when it was made with the wanted settings, else None (to
    pretrain anew there); OtherFlowError for a finished one made otherwise unless ``replace``."""
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
    if not replace:
        made = {**{k: saved.info.get(k) for k in wanted}, "num_flows": saved.num_seeds}
        changes = differences(made, {**wanted, "num_flows": num_flows})
        raise OtherFlowError(
            f"{flow_dir} holds a flow made otherwise ({'; '.join(changes[:4])}"
            f"{'; ...' if len(changes) > 4 else ''}): it may be another run's, whose agents act in "
            "its latent space, so it is not replaced. Pass the settings it was made with, another "
            f"--flow_dir (or none: the run's own <workdir>/flow), or delete {flow_dir} to replace it"
        )
    log(f"the flow in {flow_dir} was made with other settings; pretraining a new one")
    return None
