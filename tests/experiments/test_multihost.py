"""`python -m experiments.run --distributed` as two JAX processes on this machine (2 CPU
devices each, talking over localhost), against one process holding all 4 devices."""

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest


REPO = pathlib.Path(__file__).resolve().parents[2]
FLAGS = [
    "--env=maze2d-umaze", "--preset=quick", "--num_seeds=4", "--seed=5",
    "--flow_blocks=2", "--flow_epochs=2", "--flow_batch_size=256",
    "--num_updates=200", "--eval_every=100", "--eval_episodes=2", "--final_eval_episodes=3", "--batch_size=64",
    "--noprogress",
]


def _env(root, devices, **extra):
    return {
        **os.environ,
        "MINARI_DATASETS_PATH": str(root),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        **extra,
    }


def run_one(args, root):
    """One process with 4 CPU devices."""
    return subprocess.run(
        [sys.executable, "-m", "experiments.run", *args],
        cwd=REPO, env=_env(root, 4), capture_output=True, text=True, timeout=600,
    )


def start_two(args_per_process, root, module="experiments.run", **popen):
    """Starts two processes with 2 CPU devices each as one jax.distributed job."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    return [
        subprocess.Popen(
            [sys.executable, "-m", module, *args, "--distributed"],
            cwd=REPO,
            env=_env(root, 2, JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                     LFJAX_NUM_PROCESSES="2", LFJAX_PROCESS_ID=str(i)),
            text=True, **popen,
        )
        for i, args in enumerate(args_per_process)
    ]


def run_two(args_per_process, root, module="experiments.run"):
    """Runs start_two to the end; -> [(returncode, stdout, stderr)] per process."""
    procs = start_two(args_per_process, root, module, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = []
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        out.append((proc.returncode, stdout, stderr))
    return out


@pytest.fixture(scope="module")
def reference(minari_root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("one_process") / "w"
    proc = run_one([*FLAGS, f"--workdir={workdir}"], minari_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((workdir / "results.json").read_text())


@pytest.fixture(scope="module")
def distributed(minari_root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("two_processes") / "w"
    outs = run_two([[*FLAGS, f"--workdir={workdir}"]] * 2, minari_root)
    for code, _, stderr in outs:
        assert code == 0, stderr[-3000:]
    return workdir, outs


def _close(a, b):
    return np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-4, atol=1e-5)


def test_two_processes_train_like_one(distributed, reference):
    workdir, outs = distributed
    ours = json.loads((workdir / "results.json").read_text())
    assert ours["status"] == "finished" and ours["config"]["seeds"] == [5, 6, 7, 8]
    assert ours["versions"]["processes"] == "2" and reference["versions"]["processes"] == "1"
    # The shared flow: each process trained the same one on its own devices.
    _close(ours["flow"]["best_val_nll"], reference["flow"]["best_val_nll"])
    assert [p["updates"] for p in ours["curve"]] == [100, 200]
    for key in ("critic_loss", "actor_loss", "q_mean"):
        _close([p[key] for p in ours["curve"]], [p[key] for p in reference["curve"]])
    # Each process rolled out its own two seeds; the scores are the same seeds' episodes.
    _close(ours["baselines"]["flow BC (z ~ U)"], reference["baselines"]["flow BC (z ~ U)"])
    _close([p["scores"] for p in ours["curve"]], [p["scores"] for p in reference["curve"]])


def test_process_zero_speaks_for_both(distributed):
    _, ((_, out0, _), (_, out1, _)) = distributed
    assert "normalized score" in out0 and "pretraining" in out0
    # Gloo (the CPU collectives library) announces its connections itself, one line per local
    # device from several threads, written piece by piece (words and numbers), so announcements
    # interleave anywhere between pieces ("[Gloo] Rank 2[Gloo] Rank 3 is connected to ...").
    # Every word of process 1's stdout must therefore be one of the announcement's words or a
    # number; any of lfjax's own output would bring other words.
    announcement = "[Gloo] Rank is connected to peer ranks. Expected number of connected peer ranks is :"
    words = set(re.findall(r"[A-Za-z]+|\S", announcement))
    found = re.findall(r"[A-Za-z]+|\d+|\S", out1)
    assert all(w.isdigit() or w in words for w in found), out1


def test_resume_restores_every_process_part(distributed, minari_root, reference):
    workdir, _ = distributed
    copy = workdir.parent / "resumed"
    shutil.copytree(workdir, copy)
    shutil.rmtree(copy / "checkpoints" / "200")  # as if stopped after the first chunk
    outs = run_two([[*FLAGS, f"--workdir={copy}", "--resume"]] * 2, minari_root)
    for code, _, stderr in outs:
        assert code == 0, stderr[-3000:]
    assert "resuming from the checkpoint at 100 updates" in outs[0][1]
    ours = json.loads((copy / "results.json").read_text())
    theirs = json.loads((workdir / "results.json").read_text())
    assert [p["critic_loss"] for p in ours["curve"]] == [p["critic_loss"] for p in theirs["curve"]]
    assert [p["scores"] for p in ours["curve"]] == [p["scores"] for p in theirs["curve"]]


def test_seed_count_that_does_not_split_is_one_clear_line(minari_root, tmp_path):
    args = [a for a in FLAGS if not a.startswith("--num_seeds")] + ["--num_seeds=3"]
    outs = run_two([[*args, f"--workdir={tmp_path / 'w'}"]] * 2, minari_root)
    for code, _, stderr in outs:
        assert code == 2 and "multiple of 4 seeds" in stderr and "Traceback" not in stderr


def test_workdir_not_shared_between_hosts_is_refused(minari_root, tmp_path):
    # Two different paths stand in for one path that is not on a shared filesystem.
    outs = run_two([[*FLAGS, f"--workdir={tmp_path / f'host{i}'}"] for i in range(2)], minari_root)
    for code, _, stderr in outs:
        assert code == 2 and "is not shared" in stderr and "Traceback" not in stderr, stderr[-2000:]
    assert not (tmp_path / "host0" / "checkpoints").exists()


def test_a_mistake_found_by_one_process_stops_both_with_its_message(minari_root, tmp_path):
    # Only process 1's workdir holds another run, so only process 1 finds the mistake;
    # process 0 must not wait for it forever, and says what process 1 found.
    other = tmp_path / "host1"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"env": "maze2d-umaze", "num_seeds": 99}))
    outs = run_two([[*FLAGS, f"--workdir={tmp_path / 'host0'}"], [*FLAGS, f"--workdir={other}"]],
                   minari_root)
    (code0, _, err0), (code1, _, err1) = outs
    assert code0 == 2 and code1 == 2
    assert "different configuration" in err1
    assert "process 1 of 2" in err0 and "different configuration" in err0
    assert "Traceback" not in err0 + err1


def test_flows_per_seed_split_over_both_processes_then_reused(minari_root, tmp_path):
    # experiments.pretrain_flow --distributed: 4 flows over 4 devices of 2 processes; then
    # experiments.run --distributed --flow_per_seed picks them up from the shared flow dir.
    flow_args = ["--env=maze2d-umaze", "--preset=quick", "--num_seeds=4", "--seed=5",
                 "--flow_blocks=2", "--flow_epochs=2", "--flow_batch_size=256", "--noprogress",
                 f"--workdir={tmp_path / 'flows'}"]
    for code, _, stderr in run_two([flow_args] * 2, minari_root, module="experiments.pretrain_flow"):
        assert code == 0, stderr[-3000:]
    saved = json.loads((tmp_path / "flows" / "flow" / "flow.json").read_text())
    assert saved["num_seeds"] == 4 and len(set(saved["best_val_nll"])) == 4

    args = [*FLAGS, "--flow_per_seed", f"--flow_dir={tmp_path / 'flows' / 'flow'}",
            f"--workdir={tmp_path / 'run'}"]
    outs = run_two([args] * 2, minari_root)
    for code, _, stderr in outs:
        assert code == 0, stderr[-3000:]
    assert "reusing the pretrained flow" in outs[0][1]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "finished" and results["flow"]["best_val_nll"] == saved["best_val_nll"]


def _reported_updates(workdir) -> int:
    try:
        return json.loads((workdir / "results.json").read_text())["updates"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def test_a_process_that_dies_stops_the_other_with_one_line_and_loses_nothing(minari_root, tmp_path):
    workdir = tmp_path / "w"
    args = [*[a for a in FLAGS if not a.startswith(("--num_updates", "--eval_every"))],
            "--num_updates=300", "--eval_every=50", f"--workdir={workdir}"]
    p0, p1 = start_two([args] * 2, minari_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        # Until process 0 has reported the evaluation at 100: the checkpoint's directory appears
        # at orbax's commit, before the processes' last barrier of that save, and a kill in
        # between loses the step (seen once on the loaded 2-core machine: results at 50).
        while _reported_updates(workdir) < 100:
            assert time.time() < deadline and p0.poll() is None, "no evaluation was reported"
            time.sleep(0.1)
        p1.kill()  # a host lost mid-run
        p1.communicate()
        _, stderr = p0.communicate(timeout=120)  # not a heartbeat timeout and a core dump
    finally:
        p0.kill()
        p1.kill()
    assert p0.returncode == 1, stderr[-3000:]
    assert "lost contact with another process" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["updates"] >= 100 and saved["status"] == "running"

    # The same command with --resume on both hosts finishes the run from its last checkpoint.
    outs = run_two([[*args, "--resume"]] * 2, minari_root)
    for code, _, err in outs:
        assert code == 0, err[-3000:]
    assert "resuming from the checkpoint" in outs[0][1]
    assert json.loads((workdir / "results.json").read_text())["status"] == "finished"


def test_sigterm_to_one_process_stops_both_at_the_same_step_saved(minari_root, tmp_path):
    """A cluster's SIGTERM reaching one host only: every process learns it at the next chunk
    boundary (one all-gather), and all stop after the same chunk, checkpointed, exit 143."""
    workdir = tmp_path / "w"
    args = [*[a for a in FLAGS if not a.startswith(("--num_updates", "--eval_every"))],
            "--num_updates=3000", "--eval_every=50", f"--workdir={workdir}"]
    p0, p1 = start_two([args] * 2, minari_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not (workdir / "checkpoints" / "100").exists():
            assert time.time() < deadline and p0.poll() is None, "no checkpoint appeared"
            time.sleep(0.1)
        p1.send_signal(signal.SIGTERM)
        (_, err0), (_, err1) = p0.communicate(timeout=300), p1.communicate(timeout=300)
    finally:
        p0.kill()
        p1.kill()
    assert (p0.returncode, p1.returncode) == (143, 143), (err0[-3000:], err1[-3000:])
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["status"] == "interrupted" and saved["interrupted"]["signal"] == "SIGTERM"
    assert 100 <= saved["updates"] < 3000
    assert max(int(d.name) for d in (workdir / "checkpoints").iterdir() if d.name.isdigit()) == saved["updates"]
    assert f"interrupted by SIGTERM at {saved['updates']} of 3000 updates" in err0
    assert "continue with on every host" in err0 and "interrupted by" not in err1


def test_distributed_without_a_coordinator_says_what_to_set(minari_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.run", *FLAGS, f"--workdir={tmp_path / 'w'}", "--distributed"],
        cwd=REPO, env={k: v for k, v in _env(minari_root, 2).items() if k != "JAX_COORDINATOR_ADDRESS"},
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "JAX_COORDINATOR_ADDRESS" in proc.stderr and "LFJAX_PROCESS_ID" in proc.stderr
    assert not (tmp_path / "w").exists()
