"""What a run's agents were trained from, and whether a resume still has it.

Every checkpoint of the agent stage records its inputs (`inputs`): the dataset's identity
(`stages.dataset.dataset_identity`) and a sha256 of its transitions, and the sha256 of the
flow the actors decode through (parameters and state statistics, every seed). An actor of
latent AWAC acts in its flow's latent space, so continuing it on other data or through another
flow would silently mix two runs. Before a resumed run writes anything, the caller compares:

    pretrained = check(workdir, loaded, flow_dir, uses_flow)   # ChangedInputsError naming what
                                                                # changed; the run's own flow

which is `recorded_inputs`, `check_dataset` and `recorded_flow` in every process of a job; and
`stages.agent.train_agent` checks again when it restores (for callers that did not).
"""

import hashlib
import pathlib
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from lfjax import data, processes
from lfjax.checkpoints import (
    CHECKPOINTS,
    CheckpointError,
    PretrainedFlow,
    as_json,
    committed_steps,
    hold_directory,
    load_pretrained_flow,
    read_json,
)
from lfjax.stages.dataset import dataset_identity

Log = Callable[[str], None]

# Keys of a maze2d dataset's generation record that differ at every generation (timings, the
# creation time): named last when saying what changed.
_INCIDENTAL = ("created", "stream_seconds", "steps_per_second", "seconds")


class ChangedInputsError(CheckpointError):
    """The dataset or the flow that a run's checkpoints were trained from is not what a resume
    would use; the message names what changed and the ways on."""


def sha256_of(tree: Any) -> str:
    """sha256 (hex) of a pytree of arrays: every leaf's shape, dtype and bytes, in tree order."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        leaf = np.ascontiguousarray(np.asarray(jax.device_get(leaf)))
        h.update(f"{leaf.shape}{leaf.dtype.str}".encode())
        h.update(leaf.tobytes())
    return h.hexdigest()


def flow_sha256(pretrained: PretrainedFlow) -> str:
    """The flow's fingerprint: every seed's parameters and the state statistics it was trained
    with (what the actors decode through)."""
    return sha256_of((pretrained.params, pretrained.state_mean, pretrained.state_std))


def inputs(loaded: data.LoadedDataset, pretrained: PretrainedFlow, uses_flow: bool) -> dict[str, Any]:
    """What the agent stage records with every checkpoint: {"dataset": identity,
    "dataset_sha256": of its transitions, "flow_sha256": of the flow, or None without one}."""
    return {
        "dataset": dataset_identity(loaded),
        "dataset_sha256": sha256_of(loaded.transitions),
        "flow_sha256": flow_sha256(pretrained) if uses_flow else None,
    }


def check(workdir: pathlib.Path, loaded: data.LoadedDataset, flow_dir: pathlib.Path, uses_flow: bool,
          log: Log = print) -> PretrainedFlow | None:
    """Before a resume writes anything: ChangedInputsError (in every process of a job) unless
    the data loaded now is the data the run's checkpoints were trained on and flow_dir holds
    the flow they were trained through. Returns that flow, checked (None: no checkpoint or no
    recorded flow yet; the caller loads or pretrains as for a new run). Each step is
    `processes.together`, so that a process that finds a change stops the others too."""
    errors = (CheckpointError, ValueError)
    recorded = processes.together(lambda: recorded_inputs(workdir), errors)
    if recorded is None:
        return None
    processes.together(lambda: check_dataset(recorded, loaded, workdir), errors)
    if not (uses_flow and recorded.get("flow_sha256")):
        return None
    return recorded_flow(recorded, flow_dir, workdir, log)


def recorded_inputs(workdir: pathlib.Path) -> dict[str, Any] | None:
    """The inputs recorded with the newest readable checkpoint in workdir; for checkpoints
    older than the record, the dataset identity results.json names ({"dataset": ...}); None
    without a checkpoint. Writes nothing."""
    steps = committed_steps(workdir)
    if not steps:
        return None
    options = ocp.CheckpointManagerOptions(max_to_keep=None, save_interval_steps=0, create=False,
                                           read_only=True)
    manager = ocp.CheckpointManager((pathlib.Path(workdir) / CHECKPOINTS).absolute(), options=options)
    try:
        for step in reversed(steps):
            try:
                record = manager.restore(step, args=ocp.args.Composite(
                    progress=ocp.args.JsonRestore()))["progress"]
            except Exception:  # unreadable: the agent stage skips it too
                continue
            if "inputs" in record:
                return record["inputs"]
            break
    finally:
        manager.close()
    results = pathlib.Path(workdir) / "results.json"
    if results.is_file():
        dataset = read_json(results).get("dataset", {})
        if "minari_id" in dataset:
            return {"dataset": {k: dataset.get(k) for k in ("minari_id", "num_transitions", "generation")}}
    return None


def check_dataset(recorded: dict[str, Any], loaded: data.LoadedDataset, workdir: pathlib.Path) -> None:
    """ChangedInputsError unless ``loaded`` is the data the run trained on: the same
    transitions (sha256) when recorded, else the same identity (name, size, generation)."""
    now = dataset_identity(loaded)
    if "dataset_sha256" in recorded:
        if sha256_of(loaded.transitions) == recorded["dataset_sha256"]:
            return
    elif as_json(recorded["dataset"]) == as_json(now):
        return
    changes = differences(recorded["dataset"], now) or ["same name and size, other transitions"]
    raise ChangedInputsError(
        f"--resume: the dataset {now['minari_id']} is not the one the run in {workdir} trained on "
        f"({'; '.join(changes[:3])}{'; ...' if len(changes) > 3 else ''}): its checkpoints hold "
        "agents trained on the old data. Restore that dataset (its generation settings are in "
        f"{pathlib.Path(workdir) / 'results.json'}, under dataset), or start over with another --workdir"
    )


def recorded_flow(recorded: dict[str, Any], flow_dir: pathlib.Path, workdir: pathlib.Path,
                  log: Log = print) -> PretrainedFlow:
    """The flow in flow_dir when it is the very flow the run trained through (same sha256),
    read under flow_dir's shared lock; ChangedInputsError otherwise (another flow, none), in
    every process of a job if any of them found it so."""
    expected = recorded["flow_sha256"]
    way_on = (f"its actors act in that flow's latent space. Restore that flow into {flow_dir} (or "
              "pass the --flow_dir that holds it), or start over with another --workdir")

    def load_and_compare() -> PretrainedFlow:
        if not (flow_dir / "flow.json").is_file():
            raise ChangedInputsError(
                f"--resume: {flow_dir} holds no finished flow (no flow.json), not the flow the run "
                f"in {workdir} trained through (sha256 {expected[:12]}); {way_on}"
            )
        pretrained = load_pretrained_flow(flow_dir)
        now = flow_sha256(pretrained)
        if now != expected:
            made = ", ".join(f"{k} {pretrained.info.get(k)}" for k in ("seed", "num_epochs")
                             if k in pretrained.info)
            raise ChangedInputsError(
                f"--resume: the flow in {flow_dir} ({made}, sha256 {now[:12]}) is not the one the "
                f"run in {workdir} trained through (sha256 {expected[:12]}); {way_on}"
            )
        return pretrained

    with hold_directory(flow_dir, shared=True):  # no writer replaces it while it is read
        pretrained = processes.together(load_and_compare, (CheckpointError,))
    log(f"reusing the pretrained flow in {flow_dir}, the one this run trained through")
    return pretrained


def check_restored(recorded: dict[str, Any], now: dict[str, Any], workdir: pathlib.Path) -> None:
    """ChangedInputsError unless the inputs recorded with a restored checkpoint are ``now``'s
    (`inputs`): the agent stage's own check, for callers that did not compare first."""
    if recorded.get("dataset_sha256") != now["dataset_sha256"]:
        raise ChangedInputsError(
            f"the checkpoints in {workdir} were trained on other data than "
            f"{now['dataset']['minari_id']} as loaded now; restore that dataset, or start over "
            "in another directory"
        )
    if recorded.get("flow_sha256") != now["flow_sha256"]:
        raise ChangedInputsError(
            f"the checkpoints in {workdir} were trained through another flow (sha256 "
            f"{str(recorded.get('flow_sha256'))[:12]}, now {str(now['flow_sha256'])[:12]}); use "
            "that flow, or start over in another directory"
        )


def differences(before: dict, now: dict, prefix: str = "") -> list[str]:
    """'generation.seed 0 -> 7', ... for the leaves of two JSON-like records that differ:
    settings first, then what follows from them (reference returns, versions), then the
    incidental (times)."""
    out = []
    for key in sorted(set(before) | set(now), key=str):
        a, b = before.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif as_json(a) != as_json(b):
            out.append(f"{prefix}{key} {a} -> {b}")
    if prefix:
        return out

    def rank(line: str) -> int:
        path = line.split(" ")[0].split(".")
        if path[-1] in _INCIDENTAL:
            return 2
        return 1 if path[-1].startswith("ref_") or "versions" in path else 0

    return sorted(out, key=rank)
