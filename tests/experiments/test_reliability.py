"""Damaged files, bad data and bad paths on the command line: detected, reported in one line,
and nothing finished is lost. (A seed that goes non-finite: tests/stages/test_agent.py and
tests/experiments/test_reporting.py; two processes on one workdir: tests/experiments/test_run.py.)"""

import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from .conftest import REPO, cli_env, run_signalled


def _cli(args, root):
    env = cli_env(root)
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


TINY = ["--env=maze2d-umaze", "--preset=quick", "--num_seeds=2", "--flow_blocks=2", "--flow_epochs=1",
        "--flow_batch_size=256", "--num_updates=40", "--eval_every=20", "--eval_episodes=1", "--final_eval_episodes=1",
        "--batch_size=32", "--noprogress"]


@pytest.fixture(scope="module")
def finished_run(minari_root, tmp_path_factory):
    """A TINY run to its end: (workdir, its results.json)."""
    workdir = tmp_path_factory.mktemp("reliability") / "w"
    proc = _cli([*TINY, f"--workdir={workdir}"], minari_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, json.loads((workdir / "results.json").read_text())


# TINY trained 20 updates longer, its last evaluation with 2 episodes.
LONGER = [*[a for a in TINY if not a.startswith(("--num_updates", "--final_eval_episodes"))],
          "--num_updates=60", "--final_eval_episodes=2"]


@pytest.fixture(scope="module")
def longer_run(minari_root, finished_run):
    """LONGER to its end, never interrupted, through finished_run's flow: its results.json."""
    workdir = finished_run[0].parent / "longer"
    proc = _cli([*LONGER, f"--flow_dir={finished_run[0] / 'flow'}", f"--workdir={workdir}"], minari_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((workdir / "results.json").read_text())


def _same_results(ours: dict, theirs: dict) -> None:
    assert ours["status"] == "finished" and ours["updates"] == theirs["updates"]
    assert [p["scores"] for p in ours["curve"]] == [p["scores"] for p in theirs["curve"]]
    assert [p["critic_loss"] for p in ours["curve"]] == [p["critic_loss"] for p in theirs["curve"]]
    assert ours["final"] == theirs["final"]


def _truncate_largest_array_file(step_dir: pathlib.Path) -> None:
    """Cuts the largest array file of a checkpoint to half its size (a disk that filled up, a
    copy cut short)."""
    files = [f for f in (step_dir / "state").rglob("*") if f.is_file()]
    largest = max(files, key=lambda f: f.stat().st_size)
    assert largest.stat().st_size > 1000, largest  # the arrays, not a small metadata file
    largest.write_bytes(largest.read_bytes()[: largest.stat().st_size // 2])


def _evaluate(args, root):
    return subprocess.run([sys.executable, "-m", "experiments.evaluate", *args], cwd=REPO,
                          env=cli_env(root), capture_output=True, text=True, timeout=600)


def test_corrupt_checkpoints_and_results_give_clear_errors(minari_root, finished_run, tmp_path):
    """Every checkpoint damaged (40: every file garbage, metadata included; 20: an array file
    truncated): --resume stops with one line naming both and what to do, and loses nothing.
    A corrupt config.json: one line too."""
    root = minari_root
    workdir, finished = finished_run

    damaged = tmp_path / "damaged"
    shutil.copytree(workdir, damaged)
    for f in (damaged / "checkpoints" / "40" / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(b"\0garbage")
    _truncate_largest_array_file(damaged / "checkpoints" / "20")
    proc = _cli([*TINY, f"--workdir={damaged}", "--resume"], root)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: no checkpoint in {damaged / 'checkpoints'} can be read (40: "), proc.stderr[-3000:]
    assert "; 20: " in lines[0] and "start the run over" in lines[0]
    assert json.loads((damaged / "results.json").read_text()) == finished  # nothing lost

    (damaged / "config.json").write_text("{trunc")
    proc = _cli([*TINY, f"--workdir={damaged}", "--resume"], root)
    assert proc.returncode == 2 and "corrupt" in proc.stderr and "Traceback" not in proc.stderr


# experiments.run with orbax's commit of checkpoint step $LFJAX_TEST_HANG_AT held back: the
# step's files are all written into orbax's temporary directory, whose rename to the step
# would commit it; the process then says so in $LFJAX_TEST_MARKER and waits to be killed.
HANG_IN_SAVE = """
import os, runpy, sys, time
from orbax.checkpoint._src.path import atomicity

commit = atomicity.AtomicRenameTemporaryPath.finalize

async def finalize(self):
    final = self.get_final()
    if final.parent.name == "checkpoints" and final.name == os.environ["LFJAX_TEST_HANG_AT"]:
        with open(os.environ["LFJAX_TEST_MARKER"], "w") as f:
            f.write(str(self.get()))
        time.sleep(600)
    return await commit(self)

atomicity.AtomicRenameTemporaryPath.finalize = finalize
sys.argv = ["experiments.run", *sys.argv[1:]]
runpy.run_module("experiments.run", run_name="__main__", alter_sys=True)
"""


def test_killed_during_a_checkpoint_save_resumes_from_the_last_committed_one(
        minari_root, finished_run, tmp_path):
    """A kill in the middle of orbax's save of step 40 (its files written to the temporary
    directory, not yet renamed into place): --resume starts from step 20 and ends with the
    results of a run that was never interrupted."""
    workdir, finished = finished_run
    half = tmp_path / "w"
    marker = tmp_path / "saving"
    env = cli_env(minari_root, LFJAX_TEST_HANG_AT="40", LFJAX_TEST_MARKER=str(marker))
    flow = f"--flow_dir={workdir / 'flow'}"  # the finished run's flow, reused: no pretraining
    proc = subprocess.Popen([sys.executable, "-c", HANG_IN_SAVE, *TINY, flow, f"--workdir={half}"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not marker.exists():
            assert proc.poll() is None, "the run ended before saving step 40"
            assert time.time() < deadline, "the save of step 40 never started"
            time.sleep(0.05)
        temporary = pathlib.Path(marker.read_text())
        assert temporary.parent == half / "checkpoints" and temporary.name.startswith("40.")
        assert any(f.is_file() for f in (temporary / "state").rglob("*"))  # arrays written
        assert not (half / "checkpoints" / "40").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    assert json.loads((half / "results.json").read_text())["updates"] == 20

    proc = _cli([*TINY, flow, f"--workdir={half}", "--resume"], minari_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming from the checkpoint at 20 updates" in proc.stdout, proc.stdout
    _same_results(json.loads((half / "results.json").read_text()), finished)


def test_a_truncated_latest_checkpoint_is_skipped_for_the_newest_intact_one(minari_root, finished_run, tmp_path):
    """The largest array file of the last checkpoint (40) cut to half: experiments.evaluate
    evaluates checkpoint 20 and says why; --resume says which checkpoint it skipped and why,
    moves it aside (kept, out of the way), resumes from 20 and ends with the results of a run
    never damaged; no traceback on stderr. (Before: both stopped with "delete it and rerun",
    and the restore's pending reads could print tracebacks around that line.)"""
    workdir, finished = finished_run
    damaged = tmp_path / "w"
    shutil.copytree(workdir, damaged)
    _truncate_largest_array_file(damaged / "checkpoints" / "40")

    evaluated = _evaluate([f"--workdir={damaged}", "--episodes=1"], minari_root)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "the checkpoint at 40 updates cannot be read" in evaluated.stdout, evaluated.stdout
    assert "evaluating the one at 20 updates, the newest intact one" in evaluated.stdout
    assert "maze2d-umaze after 20 updates" in evaluated.stdout and evaluated.stderr == ""
    assert (damaged / "evaluations" / "step-20-1ep-sample-seed0.json").is_file()

    proc = _cli([*TINY, f"--workdir={damaged}", "--resume"], minari_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == "", proc.stderr[-3000:]
    assert re.search(r"skipping the checkpoint at 40 updates, which cannot be read \(.+\); moved to "
                     + re.escape(str(damaged / "damaged-checkpoints" / "40")), proc.stdout), proc.stdout
    assert "resuming from the checkpoint at 20 updates" in proc.stdout, proc.stdout
    _same_results(json.loads((damaged / "results.json").read_text()), finished)
    assert sorted(p.name for p in (damaged / "checkpoints").iterdir()) == ["20", "40"]
    assert (damaged / "damaged-checkpoints" / "40" / "state").is_dir()


# experiments.run on a disk that is full for the writes whose path contains
# $LFJAX_TEST_FULL_DISK: the stub fails them where orbax hands arrays to TensorStore (jax arrays:
# the agent's checkpoints; numpy arrays: the flow) and where lfjax's own files are synced, with
# the OSError(ENOSPC) a full disk gives; orbax's threads then fail around it as they do on a
# real full disk (checked by hand on a small tmpfs: BUILD_NOTES.md).
FULL_DISK = """
import errno, os, runpy, sys
from orbax.checkpoint._src.serialization import serialization, type_handlers

where = os.environ["LFJAX_TEST_FULL_DISK"]


def full(path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


serialize = serialization.async_serialize_from_host
async def async_serialize_from_host(value, tspec, *args, **kwargs):
    if where in str(tspec):
        full(tspec)
    return await serialize(value, tspec, *args, **kwargs)


write_numpy = type_handlers.NumpyHandler._open_and_write
async def open_and_write(self, value, tspec, ts_context):
    if where in str(tspec):
        full(tspec)
    return await write_numpy(self, value, tspec, ts_context)


fsync = os.fsync
def failing_fsync(fd):
    path = os.readlink(f"/proc/self/fd/{fd}")
    if where in path:
        full(path)
    fsync(fd)


serialization.async_serialize_from_host = async_serialize_from_host
type_handlers.NumpyHandler._open_and_write = open_and_write
os.fsync = failing_fsync
sys.argv = ["experiments.run", *sys.argv[1:]]
runpy.run_module("experiments.run", run_name="__main__", alter_sys=True)
"""


def test_a_full_disk_is_one_line_and_resume_goes_on_once_there_is_room(minari_root, finished_run, tmp_path):
    """The disk fills while the flow is saved, then (after --resume) while the agents'
    checkpoint at 40 is saved, then while results.json is written: each time one line on
    stderr (what was being written, about how much it needed, rerun with --resume), exit
    status 2, nothing finished lost; --resume on a disk with room ends with the results of a
    run that never met a full disk. (Before: orbax's threads logged four tracebacks around
    orbax's own error text, and the line suggested checking the path.)"""
    _, finished = finished_run
    workdir = tmp_path / "w"
    resume = []

    def full_at(where):
        proc = subprocess.run([sys.executable, "-c", FULL_DISK, *TINY, f"--workdir={workdir}", *resume],
                              cwd=REPO, env=cli_env(minari_root, LFJAX_TEST_FULL_DISK=where),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2, proc.stderr[-3000:]
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr[-5000:]
        return proc, lines[0]

    _, line = full_at("flow/params.")
    assert re.fullmatch(rf"error: no space left on device writing {re.escape(str(workdir / 'flow' / 'params'))} "
                        r"\(the step needed (under 0\.1|about [0-9.]+) MB\); free space and rerun the same "
                        r"command with --resume", line), line
    assert not (workdir / "flow" / "flow.json").exists() and (workdir / "flow" / "progress" / "1").is_dir()

    resume = ["--resume"]
    proc, line = full_at("checkpoints/40.")
    assert "resuming the flow's pretraining after epoch 1/1" in proc.stdout, proc.stdout
    assert re.fullmatch(rf"error: no space left on device writing {re.escape(str(workdir / 'checkpoints' / '40'))} "
                        r"\(the step needed about [0-9.]+ MB\); free space and rerun the same command "
                        r"with --resume", line), line
    assert json.loads((workdir / "results.json").read_text())["updates"] == 20

    proc, line = full_at("results.json")
    assert "resuming from the checkpoint at 20 updates" in proc.stdout, proc.stdout
    assert line.startswith(f"error: no space left on device writing {workdir / 'results.json'} (the step "
                           "needed under 0.1 MB); free space"), line
    assert json.loads((workdir / "results.json").read_text())["updates"] == 20  # the old file, whole

    proc = _cli([*TINY, f"--workdir={workdir}", "--resume"], minari_root)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
    assert "resuming from the checkpoint at 40 updates" in proc.stdout, proc.stdout
    _same_results(json.loads((workdir / "results.json").read_text()), finished)


def test_a_finished_run_trains_longer_on_resume_and_records_it(minari_root, finished_run, longer_run, tmp_path):
    """A finished run of 40 updates resumed with --num_updates=60 and --final_eval_episodes=2:
    it goes on from its checkpoint at 40 (keeping its curve, whose point at 40 was its final
    evaluation), ends with the results of a run of 60 updates never stopped, and records the
    change in results.json; config.json now holds the new settings. (Before: refused, "a
    different configuration (differs in: final_eval_episodes, num_updates)".)"""
    workdir, finished = finished_run
    extended = tmp_path / "w"
    shutil.copytree(workdir, extended)
    proc = _cli([*LONGER, f"--workdir={extended}", "--resume"], minari_root)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
    assert ("resuming from the checkpoint at 40 updates (num_updates 40 -> 60, final_eval_episodes 1 -> 2)"
            in proc.stdout), proc.stdout
    ours = json.loads((extended / "results.json").read_text())
    assert [(p["updates"], p["episodes"]) for p in ours["curve"]] == [(20, 1), (40, 1), (60, 2)]
    assert ours["curve"][:2] == finished["curve"]  # kept as they were, not evaluated again
    _same_results(ours, longer_run)
    assert ours["baselines"] == finished["baselines"]
    [resumed] = ours["resumed"]
    assert resumed["at_updates"] == 40 and resumed["changed"] == {"num_updates": [40, 60], "final_eval_episodes": [1, 2]}
    assert ours["config"]["num_updates"] == 60
    assert json.loads((extended / "config.json").read_text())["num_updates"] == 60


def _files(directory):
    """{path: (size, mtime)} of every file under directory but the lock files (a refused
    resume holds the lock while it compares: the file then names it as the last holder)."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in directory.rglob("*") if p.is_file() and p.name != "lfjax.lock"}


def test_resume_on_other_data_or_through_another_flow_is_refused_before_anything_is_written(
        minari_root, finished_run, tmp_path):
    """The checkpoints record the data and the flow the agents were trained from. --resume on
    the dataset regenerated (make_dataset --overwrite --seed=7, as the issue did), or with the
    run's flow replaced by another of the same settings (as a rerun on other hardware into a
    shared --flow_dir would), or removed: exit 2, one line naming what changed and the ways on,
    nothing written. With the data and the flow back, it resumes. (Before: the regenerated data
    got a new flow pretrained and the old actors went on through it, exit 0.)"""
    from lfjax.checkpoints import load_pretrained_flow, save_pretrained_flow

    workdir, finished = finished_run
    copy = tmp_path / "w"
    shutil.copytree(workdir, copy)
    before = _files(copy)

    regenerated = tmp_path / "minari"
    shutil.copytree(minari_root, regenerated)
    proc = subprocess.run([sys.executable, "-m", "experiments.make_dataset", "--env=maze2d-umaze",
                           "--num_steps=4000", "--ref_episodes=3", "--seed=7", "--overwrite"],
                          cwd=REPO, env=cli_env(regenerated), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _cli([*TINY, f"--workdir={copy}", "--resume"], regenerated)
    assert proc.returncode == 2, proc.stderr[-3000:]
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"error: --resume: the dataset lfjax/maze2d-umaze-v1 is not the one the run in {copy} "
                           "trained on (generation.seed 0 -> 7; "), line
    assert "Restore that dataset" in line and "start over with another --workdir" in line
    assert "pretraining" not in proc.stdout and _files(copy) == before

    # Another flow of the same settings (flow.json unchanged), in the run's flow directory.
    shutil.copytree(copy / "flow", tmp_path / "flow-backup")
    flow = load_pretrained_flow(copy / "flow")
    other = jax.tree_util.tree_map(lambda x: np.asarray(x) * np.float32(1.001), flow.params)
    save_pretrained_flow(copy / "flow", flow.flow, other, flow.state_mean, flow.state_std, flow.info)
    before = _files(copy)
    proc = _cli([*TINY, f"--workdir={copy}", "--resume"], minari_root)
    assert proc.returncode == 2, proc.stderr[-3000:]
    [line] = proc.stderr.splitlines()
    assert re.match(rf"error: --resume: the flow in {re.escape(str(copy / 'flow'))} \(seed 0, num_epochs 1, "
                    rf"sha256 \w{{12}}\) is not the one the run in {re.escape(str(copy))} trained through "
                    r"\(sha256 \w{12}\); its actors act in that flow's latent space. Restore that flow", line), line
    assert _files(copy) == before

    (copy / "flow" / "flow.json").unlink()
    proc = _cli([*TINY, f"--workdir={copy}", "--resume"], minari_root)
    assert proc.returncode == 2 and "holds no finished flow (no flow.json)" in proc.stderr, proc.stderr[-3000:]
    assert not (copy / "flow" / "flow.json").exists() and "pretraining" not in proc.stdout

    shutil.rmtree(copy / "flow")
    shutil.copytree(tmp_path / "flow-backup", copy / "flow")
    proc = _cli([*TINY, f"--workdir={copy}", "--resume"], minari_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "the one this run trained through" in proc.stdout and "resuming from the checkpoint at 40" in proc.stdout
    _same_results(json.loads((copy / "results.json").read_text()), finished)


def test_sigterm_ends_the_current_chunk_saved_and_the_printed_command_resumes_it(
        minari_root, finished_run, longer_run, tmp_path):
    """SIGTERM (what SLURM, Kubernetes and spot VMs send before they stop a job) arrives as the
    second of three chunks starts: that chunk ends, is evaluated and checkpointed, results.json
    says "interrupted" at 40 with the signal and the command that continues it, one line on
    stderr says the same, exit status 143. That command then ends with the results of a run
    never stopped. (Before: the process died at once, exit -15, results.json "running" at 20.)"""
    workdir = tmp_path / "w"
    flow = f"--flow_dir={finished_run[0] / 'flow'}"
    proc = run_signalled("chunk", 2, ["SIGTERM"], "experiments.run", [*LONGER, flow, f"--workdir={workdir}"],
                         minari_root)
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "SIGTERM received: stopping after the current chunk" in proc.stdout, proc.stdout
    results = json.loads((workdir / "results.json").read_text())
    assert results["status"] == "interrupted" and results["updates"] == 40
    command = results["interrupted"]["resume_command"]
    assert results["interrupted"]["signal"] == "SIGTERM" and command.endswith(" --resume")
    assert proc.stderr.splitlines() == [
        f"interrupted by SIGTERM at 40 of 60 updates; the checkpoint and results up to there are in "
        f"{workdir}; continue with: {command}"]
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["20", "40"]

    python, *rest = shlex.split(command)
    assert python == "python" and rest[:2] == ["-m", "experiments.run"]
    resumed = subprocess.run([sys.executable, *rest], cwd=REPO, env=cli_env(minari_root),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and resumed.stderr == "", resumed.stderr[-3000:]
    assert "resuming from the checkpoint at 40 updates" in resumed.stdout, resumed.stdout
    _same_results(json.loads((workdir / "results.json").read_text()), longer_run)


def test_a_second_signal_stops_at_once(minari_root, finished_run, tmp_path):
    """Ctrl-C twice: the second one stops the run at once (killed by SIGINT, as without any
    handler), leaving what it had saved: the checkpoint and results of 20 updates."""
    workdir = tmp_path / "w"
    flow = f"--flow_dir={finished_run[0] / 'flow'}"
    proc = run_signalled("chunk", 2, ["SIGINT", "SIGINT"], "experiments.run",
                         [*LONGER, flow, f"--workdir={workdir}"], minari_root)
    assert proc.returncode in (-signal.SIGINT, 128 + signal.SIGINT), (proc.returncode, proc.stderr[-3000:])
    assert "interrupted by" not in proc.stderr
    results = json.loads((workdir / "results.json").read_text())
    assert results["status"] == "running" and results["updates"] == 20
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["20"]


@pytest.mark.parametrize("module", ["experiments.run", "experiments.make_dataset"])
def test_empty_minari_path_is_one_clear_line(module, tmp_path):
    # Minari itself would fail deep inside with "No such file or directory: ''".
    env = {**os.environ, "MINARI_DATASETS_PATH": "", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", module, "--env=maze2d-umaze", f"--workdir={tmp_path / 'w'}"]
        if module == "experiments.run" else [sys.executable, "-m", module, "--env=maze2d-umaze"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2 and "MINARI_DATASETS_PATH is set but empty" in proc.stderr
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


def test_workdir_inside_a_file_is_one_clear_line(minari_root, tmp_path):
    (tmp_path / "a_file").write_text("")
    env = cli_env(minari_root)
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.run", "--env=maze2d-umaze", "--preset=quick",
         f"--workdir={tmp_path / 'a_file' / 'w'}", "--noprogress"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is a file, not a directory; choose another --workdir" in proc.stderr


def test_a_dataset_with_non_finite_values_stops_the_run_before_anything_trains(minari_root, tmp_path):
    import h5py

    root = tmp_path / "minari"
    shutil.copytree(minari_root, root)
    with h5py.File(root / "lfjax" / "maze2d-umaze-v1" / "data" / "main_data.hdf5", "r+") as f:
        f["episode_3/actions"][12, 0] = float("nan")
    workdir = tmp_path / "w"
    proc = _cli([*TINY, f"--workdir={workdir}"], root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: lfjax/maze2d-umaze-v1: 1 step(s) have non-finite values in "
                                  "actions, the first at episode 3, step 12"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not workdir.exists() and "pretraining" not in proc.stdout


def test_a_diverged_flow_is_one_line_and_exit_status_1(capsys):
    from experiments import cli
    from lfjax.pretraining import FlowDivergedError

    def stages():
        raise FlowDivergedError("flow seed(s) [0] never reached a finite validation NLL in 2 epoch(s)")

    assert cli.run_stages(stages, after_lost_contact="") == 1
    err = capsys.readouterr().err
    assert err == "error: flow seed(s) [0] never reached a finite validation NLL in 2 epoch(s)\n"
