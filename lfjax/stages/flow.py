"""The flow stage: the pretrained flow of a run, reused from its directory when it was made
from the same dataset with the same settings and seed, else pretrained and saved there. The
baselines that act in action space (``--algo=awac``, ``bc``) get the identity decoder instead
(`no_flow`)."""

import dataclasses
import pathlib
from typing import Callable

from lfjax import data, pretraining, processes
from lfjax.agent import IdentityDecoder
from lfjax.checkpoints import (
    CheckpointError,
    PretrainedFlow,
    as_json,
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
    progress: bool = False,
    log: Log = print,
) -> PretrainedFlow:
    """Reuses the flow in ``flow_dir`` when it was made from the same dataset, flow config,
    epochs and seed; otherwise pretrains ``config.num_flows`` flows (one per seed, or one
    shared) on the dataset's actions and normalized states and saves them there with the
    state statistics. Returns the flow, params with a leading seed axis [num_flows, ...]."""
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
    processes.check_same(f"whether {flow_dir} holds a usable flow", bytes([reused is not None]),
                         "the processes must see the same --flow_dir")
    processes.barrier("lfjax-flow-checked")
    if reused is not None:
        return reused

    stats = loaded.state_stats
    states = data.normalize_states(loaded.transitions.observations, stats)
    log(f"pretraining {config.num_flows} flow(s) on {loaded.minari_id}: {num_epochs} epochs, "
        f"batch {config.flow.batch_size}, {config.flow.num_blocks} blocks")
    out = pretraining.pretrain(
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
            f"(best validation NLL per seed: {saved.info['best_val_nll']})")
        return saved
    log(f"the flow in {flow_dir} was made with other settings; pretraining a new one")
    return None
