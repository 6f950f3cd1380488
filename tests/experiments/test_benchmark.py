"""`python -m experiments.benchmark --small` as a user runs it: table on stdout, JSON on disk."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def benchmark(args, tmp_path, num_devices=2, extra_env=None, **kwargs):
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={num_devices}",
        "JAX_PLATFORMS": "cpu",
        **(extra_env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.benchmark", *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    # Two seeds on two CPU devices: the sharded path, one compile per stage.
    proc = benchmark(["--small", "--seeds=2", f"--out={out}"], out.parent)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads(out.read_text()), stdout


def test_json_describes_the_machine_and_run(small_run):
    doc, _ = small_run
    assert doc["backend"] == "cpu" and doc["num_devices"] == 2 and doc["num_processes"] == 1
    assert doc["versions"]["jax"] and doc["date"] and doc["device_kind"]
    assert doc["config"]["obs_dim"] == 4 and doc["config"]["action_dim"] == 2
    assert {"timing", "flops", "memory"} <= set(doc["notes"])


def test_every_stage_is_measured_with_compile_time_apart(small_run):
    doc, _ = small_run
    assert [(r["what"], r["num_seeds"], r["num_devices"]) for r in doc["results"]] == [
        ("flow", 2, 2), ("awac", 2, 2),
    ]
    for r in doc["results"]:
        assert r["compile_s"] > 0 and r["lower_s"] > 0 and r["first_call_s"] > 0
        assert len(r["call_s"]) == doc["config"]["repeats"]
        assert r["ms_per_update"] == pytest.approx(1000 * min(r["call_s"]) / r["updates_per_call"])
        assert r["seed_updates_per_s"] == pytest.approx(2 * r["updates_per_s"])
        assert r["flops_per_update"] > 0 and r["achieved_flops_per_s"] > 0
        # The compiled scan's FLOPs are one update's: close to the unoptimized single update's.
        ratio = r["flops_per_update"] / r["flops_per_update_unoptimized_hlo"]
        assert 0.8 < ratio < 1.25, ratio
        assert r["outputs_split_over_seeds"] and r["finite"]


def test_memory_figures_show_one_dataset_copy_per_device(small_run):
    doc, _ = small_run
    rows = doc["config"]["rows"]
    for r in doc["results"]:
        memory = r["memory"]
        floats_per_row = {"flow": 4 + 2, "awac": 4 + 2 + 1 + 4 + 1}[r["what"]]
        # The flow's data also holds its int32 row indices: one "epoch" of training rows
        # (updates per call x batch) and a one-row validation set.
        indices = doc["config"]["updates_per_call"] * doc["config"]["flow"]["batch_size"] + 1
        index_bytes = 4 * indices if r["what"] == "flow" else 0
        assert memory["dataset_bytes_per_device"] == rows * floats_per_row * 4 + index_bytes
        assert memory["argument_bytes"] >= memory["dataset_bytes_per_device"]
        assert memory["peak_estimate_bytes_per_device"] > 0
        assert memory["process_peak_rss_bytes"] > 0


def test_prints_a_table(small_run):
    _, stdout = small_run
    assert "ms/update" in stdout and "seed-upd/s" in stdout and "wrote" in stdout
    assert stdout.count("compiled in") == 2


def test_bad_flags_are_reported(tmp_path):
    proc = benchmark(["--small", "--what=ppo"], tmp_path, num_devices=1)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "--what" in stderr


def test_runs_across_two_processes(tmp_path):
    # jax.distributed on one machine: 2 processes x 2 CPU devices = one 4-device mesh.
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    out = tmp_path / "bench.json"
    procs = [
        benchmark(
            ["--small", "--seeds=4", "--what=awac", f"--out={out}", "--distributed"],
            tmp_path,
            extra_env={
                "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
                "LFJAX_NUM_PROCESSES": "2",
                "LFJAX_PROCESS_ID": str(i),
            },
        )
        for i in range(2)
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
    doc = json.loads(out.read_text())  # written by process 0 only
    assert doc["num_processes"] == 2 and doc["num_devices"] == 4
    (record,) = doc["results"]
    assert record["num_devices"] == 4 and record["outputs_split_over_seeds"] and record["finite"]
