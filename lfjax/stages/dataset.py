"""The dataset stage: a registry name -> the dataset in device memory, generated first when it
is a maze2d dataset that is missing, and the same in every process of a job."""

from typing import Any, Callable

import jax
import numpy as np

from lfjax import data, processes

Log = Callable[[str], None]


def prepare_dataset(env: str, *, generate_if_missing: bool, log: Log = print) -> data.LoadedDataset:
    """Loads env's dataset, generating a maze2d one first when it is missing (and saying so,
    and whether an outdated one is there). Raises UnknownEnvError and the DatasetErrors of
    `lfjax.data.load_dataset`, whose messages say how to get the data."""
    spec = data.get_env_spec(env)
    try:
        return data.load_dataset(env)
    except data.MissingDatasetError:
        if not (generate_if_missing and spec.generated_by):
            raise
    from lfjax import datagen  # gymnasium-robotics and the recipe, only when generating

    log(f"dataset for {env} not found under {data.datasets_root()}; generating it now "
        f"(same as `{spec.generated_by}`)")
    if note := data.outdated_note(spec):
        log(note)
    try:
        datagen.generate_dataset(env)
    except data.DatasetExistsError:  # another process generated it meanwhile: the same data
        log(f"dataset for {env} was generated meanwhile by another process; loading that one")
    return data.load_dataset(env)


def shared_dataset(env: str, *, generate_if_missing: bool, log: Log = print) -> data.LoadedDataset:
    """prepare_dataset in every process of the job, process 0 first (the others may then find
    the dataset it generated on a shared disk), then a check that all loaded the same data."""
    loaded = processes.together(
        lambda: prepare_dataset(env, generate_if_missing=generate_if_missing, log=log),
        (data.DatasetError, ValueError), leader_first=True,
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
    processes.check_same(
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


def normalized(transitions: data.Transitions, stats: data.StateStats) -> data.Transitions:
    """The dataset every network sees: observations and next observations normalized with the
    same statistics, once, on the device."""
    return transitions.replace(
        observations=data.normalize_states(transitions.observations, stats),
        next_observations=data.normalize_states(transitions.next_observations, stats),
    )
