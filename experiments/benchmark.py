"""How fast lfjax trains, for 1, 2, 4, 8, ... seeds at once, on whatever devices JAX sees.

    python -m experiments.benchmark                        # paper sizes, maze2d shapes (S=4, A=2)
    python -m experiments.benchmark --obs_dim=17 --action_dim=6   # halfcheetah shapes
    python -m experiments.benchmark --small                # smoke test: ~40 s, mostly compiling

For each stage (``flow``: one maximum-likelihood step of the 12-block flow at batch 1024;
``awac``: one latent-AWAC update at batch 512 with 4-layer 256-wide MLPs) and each seed
count, it compiles the jitted ``lax.scan`` of ``--steps`` updates for all seeds (the form the
training code runs), times compilation on its own (``lower`` + ``compile``), then times
``--repeats`` further calls of the compiled program to completion (``block_until_ready``).
Seeds are split over the devices with ``lfjax.sharding`` (a mesh over the seed axis) and the
synthetic, device-resident dataset (``--rows``, 1M by default) is replicated: one copy per
device whatever the number of seeds, which the memory columns show. FLOPs per update come from
XLA's cost analysis of the compiled program. Prints a table as it goes and writes JSON.

Runs unchanged on CPU, GPU and TPU, and across hosts (``--distributed``, see README.md).
"""

import dataclasses
import datetime
import json
import os
import platform
import sys
from typing import Callable

import jax
from absl import app, flags

from experiments.benchmarking import (
    MEMORY_NOTES,
    Sizes,
    make_awac_case,
    make_flow_case,
    matmul_rate,
    measure,
    synthetic_dataset,
    table_header,
    table_row,
)
from lfjax import processes, sharding
from lfjax.provenance import package_versions

FLAGS = flags.FLAGS
# The default member counts go to 64 for the agent; the flow, shared by a grid, stops at this.
FLOW_MAX_DEFAULT = 8
flags.DEFINE_list("members", ["1", "8", "64"], "Member counts to measure (seeds, or configs x "
                  "seeds of a grid: the same program), each trained at once.")
flags.DEFINE_alias("seeds", "members")
flags.DEFINE_list("what", ["flow", "awac"], "Stages to measure: flow (pretraining), awac.")
flags.DEFINE_integer("steps", None, "Updates per timed call (default: 10 on CPU, 200 elsewhere).")
flags.DEFINE_integer("repeats", 3, "Timed calls per measurement; the table shows the fastest.")
flags.DEFINE_string("out", "benchmark.json", "Where to write the JSON results.")
flags.DEFINE_bool("small", False, "Tiny networks and data, members 1,2: a smoke test.")
flags.DEFINE_integer("obs_dim", 4, "State dimension (maze2d 4, halfcheetah 17).")
flags.DEFINE_integer("action_dim", 2, "Action dimension (maze2d 2, halfcheetah 6).")
flags.DEFINE_integer("rows", None, "Dataset rows (default 1,000,000; --small: 10,000).")
flags.DEFINE_bool("distributed", False, "Join a multi-process job (jax.distributed); see README.")

# ----- report -------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    return {"python": platform.python_version(),
            **package_versions("lfjax", "jax", "jaxlib", "flax", "optax", "distrax", "numpy")}


def run(sizes: Sizes, seed_counts: list[int], stages: list[str], repeats: int, obs_dim: int,
        action_dim: int, log: Callable[[str], None]) -> dict:
    """Measures every (stage, seed count); returns the JSON document."""
    devices = jax.devices()
    log(f"lfjax benchmark: {len(devices)} {devices[0].device_kind} device(s) "
        f"({jax.default_backend()}) in {jax.process_count()} process(es); "
        f"{sizes.steps} updates per timed call, best of {repeats}")
    dataset = synthetic_dataset(sizes.rows, obs_dim, action_dim)
    matmul = matmul_rate(repeats)
    log(f"plain float32 matmul ({matmul['size']}x{matmul['size']}): "
        f"{matmul['flops_per_s'] / 1e9:.1f} GFLOP/s on one device")
    makers = {"flow": make_flow_case, "awac": make_awac_case}
    results = []
    for stage in stages:
        for num_seeds in seed_counts:
            if stage == "flow" and num_seeds > FLOW_MAX_DEFAULT and not FLAGS["members"].present:
                # A grid shares one flow; flows come one per seed only with --flow_per_seed.
                log(f"[flow] {num_seeds} flows: skipped (a grid shares one flow; pass --members "
                    "to measure it anyway)")
                continue
            mesh = sharding.seed_mesh(num_seeds)
            log(f"[{stage}] {num_seeds} member(s) on {mesh.size} device(s): building")
            case = makers[stage](sizes, dataset, num_seeds, mesh)
            record = measure(case, num_seeds, mesh, sizes.steps, repeats, log)
            del case
            if record["achieved_flops_per_s"]:
                per_device = record["achieved_flops_per_s"] / record["num_devices"]
                record["share_of_matmul_rate"] = per_device / matmul["flops_per_s"]
            results.append(record)
            if len(results) == 1:
                log(table_header())
            log(table_row(record))
    return {
        "date": datetime.date.today().isoformat(),
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "num_devices": len(devices),
        "num_processes": jax.process_count(),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "versions": versions(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "matmul": matmul,
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "config": {
            "obs_dim": obs_dim,
            "action_dim": action_dim,
            "rows": sizes.rows,
            "updates_per_call": sizes.steps,
            "repeats": repeats,
            "flow": dataclasses.asdict(sizes.flow),
            "awac": dataclasses.asdict(sizes.awac),
        },
        "notes": {
            "timing": (
                "ms_per_update is the fastest of the timed calls of the compiled program divided "
                "by its updates; one update advances every seed by one step. Compilation "
                "(lower_s + compile_s) and the first call (first_call_s) are excluded from it. "
                "cpu_ms_per_update is this process's CPU time (all its threads) per update: on a "
                "CPU shared with other jobs it varies less than the wall time; on GPU it is the "
                "host's share only."
            ),
            "flops": (
                "flops_per_update: XLA cost analysis of the compiled program (all devices), for "
                "one update of all seeds; achieved_flops_per_s divides it by the measured time; "
                "share_of_matmul_rate divides that (per device) by the plain float32 matmul rate "
                "measured at the start of the same run (matmul)"
            ),
            "memory": MEMORY_NOTES,
        },
        "results": results,
    }


def parse_flags() -> tuple[Sizes, list[int], list[str]]:
    """Sizes, seed counts and stages from the flags; ValueError naming what is wrong."""
    try:
        seed_counts = [int(s) for s in FLAGS.members]
    except ValueError:
        raise ValueError(f"--members takes integers, got {','.join(FLAGS.members)}") from None
    if FLAGS.small and not FLAGS["members"].present:
        seed_counts = [1, 2]  # each seed count compiles anew: keep the smoke test short
    stages = list(FLAGS.what)
    if not stages or set(stages) - {"flow", "awac"}:
        raise ValueError(f"--what takes flow and/or awac, got {','.join(stages)}")
    if not seed_counts or min(seed_counts) < 1:
        raise ValueError("--members takes positive integers")
    if (FLAGS.steps is not None and FLAGS.steps < 1) or FLAGS.repeats < 1:
        raise ValueError("--steps and --repeats must be positive")
    if jax.process_count() > 1:
        bad = [n for n in seed_counts if n % len(jax.devices())]
        if bad:
            raise ValueError(
                f"across processes every seed count must be a multiple of the "
                f"{len(jax.devices())} devices; got {bad}"
            )
    on_cpu = jax.default_backend() == "cpu"
    steps = FLAGS.steps or (3 if FLAGS.small else 10 if on_cpu else 200)
    rows = FLAGS.rows or (10_000 if FLAGS.small else 1_000_000)
    sizes = (Sizes.small if FLAGS.small else Sizes.paper)(rows, steps)
    if rows < max(sizes.flow.batch_size, sizes.awac.batch_size):
        raise ValueError(f"--rows={rows} is smaller than a batch")
    return sizes, seed_counts, stages


def main(argv) -> int:
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        processes.maybe_initialize_distributed(FLAGS.distributed or None)
        sizes, seed_counts, stages = parse_flags()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    leader = jax.process_index() == 0
    log = (lambda line: print(line, flush=True)) if leader else (lambda line: None)
    doc = run(sizes, seed_counts, stages, FLAGS.repeats, FLAGS.obs_dim, FLAGS.action_dim, log)
    if leader:
        log("")
        log(table_header())
        for record in doc["results"]:
            log(table_row(record))
        with open(FLAGS.out, "w") as f:
            json.dump(doc, f, indent=2)
        log(f"wrote {FLAGS.out}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
