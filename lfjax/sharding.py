"""Seeds across devices and hosts: a one-axis mesh, and where each array lives on it.

Every training function in lfjax is ``jax.jit(jax.vmap(...))`` over a leading seed axis, with
the dataset broadcast (``in_axes=None``). Sharding therefore needs no change to that code:
place the seed-stacked pytrees with :func:`seed_sharding` (axis 0 split over the mesh) and the
dataset with :func:`replicated_sharding` (one full copy per device), and jit compiles one SPMD
program in which every device trains its own slice of seeds and no data crosses devices.

    mesh = seed_mesh(num_seeds)
    states = shard_seeds(states, mesh)      # [N, ...] -> N / D seeds per device
    dataset = replicate(dataset, mesh)      # stored once per device, whatever N is
    states, metrics = train(states, dataset)  # outputs stay split over "seeds"
    metrics = to_host(metrics)              # numpy, on every process
    # Per-seed work outside jit (evaluation rollouts): each process does its own seeds.
    indices, mine = addressable_seeds(states.actor_params)
    scores = gather_seeds(evaluate(mine), indices, num_seeds)

Across hosts, the same program runs in every process after
`lfjax.processes.maybe_initialize_distributed` (``jax.distributed.initialize``); ``jax.devices()``
is then the global device list, the mesh spans all hosts, and every process must pass the same
values (same seeds, same dataset). Which process writes and how they agree is
`lfjax.processes`; this module only says where arrays live.
"""

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

SEED_AXIS = "seeds"

PyTree = Any


def seed_mesh(num_seeds: int, devices: list | None = None) -> Mesh:
    """A one-axis mesh named "seeds" over the devices that ``num_seeds`` seeds split evenly.

    devices: defaults to ``jax.devices()``, every device of every process. Uses all of them
    when num_seeds is a multiple of their count. On one host it otherwise falls back to the
    largest count that divides num_seeds (3 seeds on 2 devices: 1 device), so any seed count
    runs; :func:`mesh_note` says so. Across hosts every process must own part of the mesh,
    so there a seed count that does not divide evenly is a ValueError.
    """
    if num_seeds < 1:
        raise ValueError(f"num_seeds must be positive, got {num_seeds}")
    devices = list(jax.devices() if devices is None else devices)
    if num_seeds % len(devices) == 0:
        return Mesh(np.array(devices), (SEED_AXIS,))
    processes = {d.process_index for d in devices}
    if len(processes) > 1:
        raise ValueError(
            f"{num_seeds} seeds do not split evenly over the {len(devices)} devices of "
            f"{len(processes)} processes; use a multiple of {len(devices)} seeds"
        )
    used = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
    return Mesh(np.array(devices[:used]), (SEED_AXIS,))


def mesh_note(num_seeds: int, mesh: Mesh) -> str | None:
    """A line for the log when the mesh leaves devices idle; None when it uses them all."""
    available = len(jax.devices())
    if mesh.size == available:
        return None
    multiple = available * -(-num_seeds // available)
    return (
        f"{num_seeds} seeds do not split evenly over {available} devices: training on "
        f"{mesh.size} of them; --num_seeds={multiple} would use all {available}"
    )


def seed_sharding(mesh: Mesh) -> NamedSharding:
    """Axis 0 (seeds) split over the mesh, the other axes whole."""
    return NamedSharding(mesh, PartitionSpec(SEED_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def _is_local(mesh: Mesh) -> bool:
    """Whether this process owns every device of the mesh (always, in a one-process job)."""
    return all(d.process_index == jax.process_index() for d in mesh.devices.flat)


def _place(tree: PyTree, sharding: NamedSharding) -> PyTree:
    if _is_local(sharding.mesh):
        return jax.device_put(tree, sharding)
    # Across processes each one holds the same full value (same seeds, same dataset) and
    # hands over only the slices its own devices keep; device_put would first all-gather
    # the whole value to check that it is equal everywhere, which for a dataset is costly.
    def place_leaf(leaf):
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(place_leaf, tree)


def _commit(tree: PyTree, mesh: Mesh) -> PyTree:
    """Commits every leaf to the mesh's one device. jit keys its cache on whether inputs are
    committed: freshly initialized (uncommitted) states and the committed outputs of the first
    training chunk would otherwise compile the whole update twice."""
    return jax.device_put(tree, mesh.devices.flat[0])


def shard_seeds(tree: PyTree, mesh: Mesh) -> PyTree:
    """Places a seed-stacked pytree (every leaf [N, ...]) split along axis 0 over the mesh.

    On a one-device mesh it only commits the arrays to that device (see :func:`_commit`).
    Raises ValueError when N does not divide over the mesh.
    """
    if mesh.size == 1 and _is_local(mesh):
        return _commit(tree, mesh)
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if np.ndim(leaf) == 0 or np.shape(leaf)[0] % mesh.size:
            raise ValueError(
                f"cannot split {jax.tree_util.keystr(path)} of shape {np.shape(leaf)} over "
                f"{mesh.size} devices: its leading (seed) axis must be a multiple of {mesh.size}"
            )
    return _place(tree, seed_sharding(mesh))


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Places a pytree (e.g. the dataset) whole on every device of the mesh."""
    if mesh.size == 1 and _is_local(mesh):
        return _commit(tree, mesh)
    return _place(tree, replicated_sharding(mesh))


def is_split_over_seeds(tree: PyTree, mesh: Mesh) -> bool:
    """Whether every leaf is a jax.Array laid out as :func:`seed_sharding` (checks that a
    jitted function kept its outputs split rather than gathering them onto one device)."""
    want = seed_sharding(mesh)
    return all(
        isinstance(leaf, jax.Array) and leaf.sharding.is_equivalent_to(want, leaf.ndim)
        for leaf in jax.tree.leaves(tree)
    )


def to_host(tree: PyTree) -> PyTree:
    """numpy copies of a pytree of arrays, on every process (all-gathered across hosts)."""
    leaves = jax.tree.leaves(tree)
    if all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in leaves):
        return jax.device_get(tree)
    return multihost_utils.process_allgather(tree, tiled=True)


def addressable_seeds(tree: PyTree) -> tuple[np.ndarray, PyTree]:
    """The seeds this process holds: (their indices [n] into the seed axis, the tree cut to
    them, every leaf [n, ...] on this process's first device).

    For work done outside jit, one seed at a time, such as evaluation rollouts in gymnasium.
    In a one-process job it returns every seed and the tree unchanged. Across processes the
    mesh splits axis 0 and nothing else, so each seed lives in exactly one process and the
    processes' indices partition range(N): no seed's rollouts are run twice.
    """
    leaves, treedef = jax.tree.flatten(tree)
    if all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in leaves):
        return np.arange(np.shape(leaves[0])[0]), tree
    indices, local = None, []
    for leaf in leaves:
        blocks = {}
        for shard in leaf.addressable_shards:
            rows = range(*shard.index[0].indices(leaf.shape[0]))
            blocks.setdefault(rows.start, (rows, shard.data))
        ordered = [blocks[start] for start in sorted(blocks)]
        leaf_indices = np.concatenate([np.arange(r.start, r.stop) for r, _ in ordered])
        if indices is None:
            indices = leaf_indices
        elif not np.array_equal(indices, leaf_indices):
            raise ValueError("the leaves of this tree are not split over seeds the same way")
        local.append(np.concatenate([np.asarray(data) for _, data in ordered]))
    local = jax.device_put(local, jax.local_devices()[0])
    return indices, jax.tree.unflatten(treedef, local)


def gather_seeds(values: Any, indices: Any, num_seeds: int) -> np.ndarray:
    """Puts per-seed results computed where each seed lives back together, on every process.

    values: [n, ...] for the seeds ``indices`` [n] of :func:`addressable_seeds`.
    Returns [num_seeds, ...] numpy, identical in every process, exact in any dtype.
    """
    values = np.asarray(values)
    indices = np.asarray(indices)
    full = np.zeros((num_seeds, *values.shape[1:]), values.dtype)
    full[indices] = values
    owned = np.zeros(num_seeds, np.int32)
    owned[indices] = 1
    if jax.process_count() > 1:
        # Through jax arrays 64-bit values would come back 32-bit (x64 is off): move bytes.
        raw = np.ascontiguousarray(full).reshape(num_seeds, -1).view(np.uint8)
        gathered = multihost_utils.process_allgather({"raw": raw, "owned": owned})
        owned = np.asarray(gathered["owned"]).sum(axis=0)
        owner = np.asarray(gathered["owned"]).argmax(axis=0)
        raw = np.asarray(gathered["raw"])[owner, np.arange(num_seeds)]
        full = np.ascontiguousarray(raw).view(values.dtype).reshape(full.shape)
    if not (owned == 1).all():
        raise ValueError(f"every seed must come from exactly one process; counts {owned.tolist()}")
    return full
