"""What `experiments.benchmark` measures: the training code's own jitted programs (the flow's
epoch with `lfjax.pretraining.make_train`, the agent's chunk with `lfjax.agent.make_train`)
for N members on a synthetic, device-resident dataset; compile time apart from run time,
FLOPs from XLA's cost analysis, memory, and a plain matmul's rate for scale.

Members are seeds, or configurations x seeds of a hyperparameter grid: the agent's scalar
hyperparameters live in its train state, so a grid of N members is the very program that N
seeds run, and its speed is measured by the same case.
"""

import dataclasses
import functools
import os
import resource
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from lfjax import pretraining, sharding
from lfjax.agent import make_init, make_train, make_update_step
from lfjax.configs import AWACConfig, FlowTrainConfig
from lfjax.data.transitions import Transitions

MiB = 2**20


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What one benchmark run measures."""

    flow: FlowTrainConfig
    awac: AWACConfig
    rows: int
    steps: int

    @classmethod
    def paper(cls, rows: int, steps: int) -> "Sizes":
        # The paper's sizes: flow batch 1024 with 12 blocks of 256-256 conditioners; AWAC
        # batch 512 with 3 hidden layers of 256 (4 Linear layers) for actor and critics.
        return cls(FlowTrainConfig(), AWACConfig(), rows, steps)

    @classmethod
    def small(cls, rows: int, steps: int) -> "Sizes":
        flow = FlowTrainConfig(num_blocks=2, hidden_dims=(32, 32), batch_size=64)
        return cls(flow, AWACConfig(batch_size=64, hidden_dims=(32, 32)), rows, steps)


# ----- the programs measured ------------------------------------------------------------


def synthetic_dataset(rows: int, obs_dim: int, action_dim: int) -> Transitions:
    """Random transitions of the given shapes, on the host; the same on every process.

    Values do not change the cost of an update; shapes and row count do (the gathers).
    """
    rng = np.random.default_rng(0)
    f32 = lambda x: x.astype(np.float32)
    return Transitions(
        observations=f32(rng.standard_normal((rows, obs_dim))),
        actions=f32(np.tanh(rng.standard_normal((rows, action_dim)))),
        rewards=f32(rng.random(rows) < 0.05),
        next_observations=f32(rng.standard_normal((rows, obs_dim))),
        terminals=np.zeros(rows, np.float32),
    )


@dataclasses.dataclass
class Case:
    """One stage at one seed count, with its inputs placed on the mesh."""

    name: str
    batch_size: int
    lower: Callable  # lower(*args) -> jax.stages.Lowered of (new train states, metrics)
    args: tuple  # args[0] is the seed-stacked train state, carried from call to call
    single_update: Callable  # jitted one update for all seeds (no scan), same args layout
    single_args: tuple
    dataset: Any  # the replicated part of args
    seed_state: Any  # the seed-split part of args


def make_flow_case(sizes: Sizes, dataset: Transitions, num_seeds: int, mesh) -> Case:
    """The flow's own training program (`lfjax.pretraining.make_train`), with an "epoch" of
    exactly ``sizes.steps`` updates: the training rows are the first steps x batch rows, and
    validation is one row, so that it adds nothing measurable to the timed call."""
    config = sizes.flow
    flow = config.make_flow(dataset.actions.shape[1], dataset.observations.shape[1])
    actions, obs = sharding.replicate(
        (jnp.asarray(dataset.actions), jnp.asarray(dataset.observations)), mesh
    )
    num_train = min(sizes.steps * config.batch_size, actions.shape[0])
    data = pretraining.FlowData(actions, obs, jnp.arange(num_train), jnp.arange(1))
    data = sharding.replicate(data, mesh)
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    state = jax.jit(jax.vmap(lambda k: pretraining.init(config, flow, k, data)))(keys)
    state, keys = sharding.shard_seeds((state, keys), mesh)

    def one_update(state, key, actions, obs):
        batch = jax.random.randint(key, (config.batch_size,), 0, actions.shape[0])
        return pretraining.update_step(config, flow, state, actions[batch], obs[batch])

    single = jax.jit(jax.vmap(one_update, in_axes=(0, 0, None, None)))
    lower = pretraining.make_train(config, flow, num_train).lower
    return Case("flow", config.batch_size, lower, (state, keys, data), single,
                (state, keys, actions, obs), data, (state, keys))


def make_awac_case(sizes: Sizes, dataset: Transitions, num_seeds: int, mesh) -> Case:
    """The agent's own training program (`lfjax.agent.make_train`), ``sizes.steps`` updates
    per call."""
    config = sizes.awac
    obs_dim, action_dim = dataset.observations.shape[1], dataset.actions.shape[1]
    flow = sizes.flow.make_flow(action_dim, obs_dim)
    data = sharding.replicate(jax.tree.map(jnp.asarray, dataset), mesh)
    keys = jax.random.split(jax.random.PRNGKey(1), 2 * num_seeds)
    # A flow with ActNorm fitted to a data batch, frozen as the agent uses it. One per seed:
    # the general case (--flow_per_seed); a shared flow is the same program.
    flow_params = jax.jit(jax.vmap(
        lambda k: flow.freeze(flow.init(k, data.actions[:1024], data.observations[:1024]))
    ))(keys[:num_seeds])
    states = jax.jit(jax.vmap(make_init(config, flow, obs_dim)))(keys[num_seeds:])
    states, flow_params = sharding.shard_seeds((states, flow_params), mesh)
    lower = functools.partial(make_train(config, flow).lower, num_updates=sizes.steps)
    update = make_update_step(config, flow)
    single = jax.jit(jax.vmap(update, in_axes=(0, 0, None, 0)))
    step_keys = sharding.shard_seeds(jax.random.split(jax.random.PRNGKey(2), num_seeds), mesh)
    return Case("awac", config.batch_size, lower, (states, flow_params, data), single,
                (states, flow_params, data, step_keys), data, (states, flow_params))


def matmul_rate(repeats: int, size: int = 1024) -> dict:
    """This machine's plain float32 matmul rate, measured in the same run as the updates, so
    that an update's GFLOP/s can be read as a share of what the hardware gives a matmul (a
    speed compared across sessions or machines says nothing). A chain of 16 products of
    [size, size] matrices per call, the fastest of ``repeats`` calls."""
    key = jax.random.PRNGKey(0)
    a = jax.random.normal(key, (size, size), jnp.float32) / np.sqrt(size)
    chain = 16

    @jax.jit
    def products(x):
        return jax.lax.fori_loop(0, chain, lambda _, y: y @ a, x)

    jax.block_until_ready(products(a))
    times = []
    for _ in range(max(repeats, 3)):
        start = time.perf_counter()
        jax.block_until_ready(products(a))
        times.append(time.perf_counter() - start)
    flops = 2.0 * size**3 * chain
    return {"size": size, "chain": chain, "call_s": times, "flops_per_s": flops / min(times)}


# ----- measuring ----------------------------------------------------------------------------


def _nbytes_on(tree: Any, device) -> int:
    """Bytes of the tree's buffers that live on ``device``."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            if shard.device == device:
                total += shard.data.nbytes
    return total


def _process_memory() -> dict[str, int | None]:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    rss = None
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        pass
    return {"process_rss_bytes": rss, "process_peak_rss_bytes": peak_kb * 1024}


def _device_memory(device) -> dict[str, int | None]:
    try:
        stats = device.memory_stats() or {}
    except Exception:  # some backends do not implement it
        stats = {}
    return {
        "device_bytes_in_use": stats.get("bytes_in_use"),
        "device_peak_bytes_in_use": stats.get("peak_bytes_in_use"),
        "device_bytes_limit": stats.get("bytes_limit"),
    }


def _flops(analysis: Any) -> float | None:
    if isinstance(analysis, (list, tuple)):  # older JAX: one dict per program
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None
    return float(analysis["flops"])


def measure(case: Case, num_seeds: int, mesh, steps: int, repeats: int, log: Callable) -> dict:
    """Compiles and times one case; returns its JSON record."""
    device = mesh.devices.flat[0]
    num_devices = mesh.size

    start = time.perf_counter()
    lowered = case.lower(*case.args)
    lower_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    log(f"  compiled in {lower_s + compile_s:.1f} s (lower {lower_s:.1f} s + compile {compile_s:.1f} s)")

    # XLA's cost analysis counts a while loop's body once, so the compiled chunk's FLOPs are
    # one update's (for the seeds on one device). The unoptimized HLO of a single update (no
    # loop; all seeds) checks that reading, and would catch a backend that multiplies the
    # body by the trip count.
    chunk_flops = _flops(compiled.cost_analysis())
    single_flops = _flops(case.single_update.lower(*case.single_args).cost_analysis())
    flops_per_update = None
    if chunk_flops is not None:
        flops_per_update = chunk_flops * num_devices
        if single_flops and steps > 1 and flops_per_update > 0.5 * steps * single_flops:
            flops_per_update /= steps
    memory = compiled.memory_analysis()

    # Measured before the first call: the call consumes (donates) the train state it is given.
    live_before = _nbytes_on(case.args, device)
    dataset_bytes = _nbytes_on(case.dataset, device)
    seed_state_bytes = _nbytes_on(case.seed_state, device)
    args = case.args
    start = time.perf_counter()
    state, metrics = compiled(*args)
    jax.block_until_ready((state, metrics))
    first_call_s = time.perf_counter() - start
    times, cpu_times = [], []
    for _ in range(repeats):
        args = (state, *args[1:])
        start, cpu_start = time.perf_counter(), time.process_time()
        state, metrics = compiled(*args)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    split = num_devices == 1 or sharding.is_split_over_seeds((state, metrics), mesh)
    finite = bool(np.all(np.isfinite(np.asarray(sharding.to_host(jax.tree.leaves(metrics)[0])))))

    best = min(times)
    ms_per_update = 1000.0 * best / steps
    record = {
        "what": case.name,
        "num_seeds": num_seeds,
        "num_devices": num_devices,
        "batch_size": case.batch_size,
        "updates_per_call": steps,
        "lower_s": lower_s,
        "compile_s": compile_s,
        "first_call_s": first_call_s,
        "call_s": times,
        "ms_per_update": ms_per_update,
        "ms_per_update_median": 1000.0 * float(np.median(times)) / steps,
        "ms_per_seed_update": ms_per_update / num_seeds,
        "process_cpu_s": cpu_times,
        "cpu_ms_per_update": 1000.0 * min(cpu_times) / steps,
        "updates_per_s": 1000.0 / ms_per_update,
        "seed_updates_per_s": 1000.0 * num_seeds / ms_per_update,
        "flops_per_update": flops_per_update,
        "flops_per_seed_update": flops_per_update / num_seeds if flops_per_update else None,
        "flops_per_update_unoptimized_hlo": single_flops,
        "achieved_flops_per_s": (
            flops_per_update / (ms_per_update / 1000.0) if flops_per_update else None
        ),
        "outputs_split_over_seeds": bool(split),
        "finite": finite,
        "memory": {
            "dataset_bytes_per_device": dataset_bytes,
            "seed_state_bytes_per_device": seed_state_bytes,
            "live_bytes_per_device_before_call": live_before,
            "argument_bytes": memory.argument_size_in_bytes if memory else None,
            "output_bytes": memory.output_size_in_bytes if memory else None,
            "alias_bytes": memory.alias_size_in_bytes if memory else None,
            "temp_bytes": memory.temp_size_in_bytes if memory else None,
            "peak_estimate_bytes_per_device": (
                memory.argument_size_in_bytes + memory.output_size_in_bytes
                - memory.alias_size_in_bytes + memory.temp_size_in_bytes
            ) if memory else None,
            **_device_memory(device),
            **_process_memory(),
        },
    }
    # Free this case's buffers before the next one, so the memory figures do not pile up.
    del state, metrics, args, compiled, lowered
    return record


MEMORY_NOTES = {
    "dataset_bytes_per_device": (
        "the replicated dataset's bytes on one device: the same for any number of seeds"
    ),
    "seed_state_bytes_per_device": (
        "train states (and, for awac, frozen flow params) of the seeds on one device"
    ),
    "live_bytes_per_device_before_call": "all arguments of the timed program on one device",
    "argument_bytes/output_bytes/alias_bytes/temp_bytes": (
        "XLA's memory analysis of the compiled per-device program: inputs, outputs, outputs "
        "written in place of donated inputs, and scratch space"
    ),
    "peak_estimate_bytes_per_device": (
        "argument + output - alias + temp: what one call needs at once on one device"
    ),
    "device_bytes_in_use/device_peak_bytes_in_use": (
        "the allocator's own counters (GPU/TPU; null on CPU); the peak is the process's so far, "
        "so it is exact for the largest case run up to that row"
    ),
    "process_rss_bytes/process_peak_rss_bytes": (
        "host memory of this process; on CPU this is where device buffers live, so it includes "
        "the host copy of the synthetic dataset and every compiled program"
    ),
}


# ----- the printed table ----------------------------------------------------------------------


def _giga(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value / 1e9:.{digits}f}"


COLUMNS = [
    ("stage", 5, lambda r: r["what"]),
    ("members", 7, lambda r: r["num_seeds"]),
    ("dev", 3, lambda r: r["num_devices"]),
    ("compile s", 9, lambda r: f"{r['lower_s'] + r['compile_s']:.1f}"),
    ("ms/update", 9, lambda r: f"{r['ms_per_update']:.2f}"),
    ("ms/seed-upd", 11, lambda r: f"{r['ms_per_seed_update']:.2f}"),
    ("seed-upd/s", 10, lambda r: f"{r['seed_updates_per_s']:.0f}"),
    ("GFLOP/upd", 9, lambda r: _giga(r["flops_per_update"], 2)),
    ("GFLOP/s", 8, lambda r: _giga(r["achieved_flops_per_s"], 1)),
    ("% matmul", 8, lambda r: (f"{100 * r['share_of_matmul_rate']:.0f}"
                               if r.get("share_of_matmul_rate") is not None else "-")),
    ("data MiB/dev", 12, lambda r: f"{r['memory']['dataset_bytes_per_device'] / MiB:.1f}"),
    ("state MiB/dev", 13, lambda r: f"{r['memory']['seed_state_bytes_per_device'] / MiB:.1f}"),
    ("peak MiB/dev", 12, lambda r: (
        f"{r['memory']['peak_estimate_bytes_per_device'] / MiB:.1f}"
        if r["memory"]["peak_estimate_bytes_per_device"] is not None else "-")),
]


def table_header() -> str:
    return "  ".join(f"{name:>{width}}" for name, width, _ in COLUMNS)


def table_row(record: dict) -> str:
    return "  ".join(f"{str(get(record)):>{width}}" for _, width, get in COLUMNS)
