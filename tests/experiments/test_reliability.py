"""Damaged files, bad data and bad paths on the command line: detected, reported in one line,
and nothing finished is lost. (A seed that goes non-finite: tests/stages/test_agent.py and
tests/experiments/test_reporting.py; two processes on one workdir: tests/experiments/test_run.py.)"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _cli(args, root):
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


TINY = ["--env=maze2d-umaze", "--preset=quick", "--num_seeds=2", "--flow_blocks=2", "--flow_epochs=1",
        "--flow_batch_size=256", "--num_updates=40", "--eval_every=20", "--eval_episodes=1", "--final_eval_episodes=1",
        "--batch_size=32", "--noprogress"]


def test_corrupt_checkpoint_and_results_give_clear_errors(minari_root, tmp_path):
    root = minari_root
    workdir = tmp_path / "w"
    assert _cli([*TINY, f"--workdir={workdir}"], root).returncode == 0
    finished = json.loads((workdir / "results.json").read_text())

    damaged = tmp_path / "damaged"
    shutil.copytree(workdir, damaged)
    for f in (damaged / "checkpoints" / "40" / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(b"\0garbage")
    proc = _cli([*TINY, f"--workdir={damaged}", "--resume"], root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "checkpoint" in proc.stderr and ("corrupt" in proc.stderr or "readable" in proc.stderr), proc.stderr

    (damaged / "config.json").write_text("{trunc")
    proc = _cli([*TINY, f"--workdir={damaged}", "--resume"], root)
    assert proc.returncode == 2 and "corrupt" in proc.stderr and "Traceback" not in proc.stderr

    # An interrupted checkpoint write leaves only orbax's temporary directory: resume ignores
    # it and finishes from the last committed checkpoint with the same results.
    half = tmp_path / "half"
    shutil.copytree(workdir, half)
    shutil.rmtree(half / "checkpoints" / "40")
    (half / "checkpoints" / "40.orbax-checkpoint-tmp-123").mkdir()
    proc = _cli([*TINY, f"--workdir={half}", "--resume"], root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = json.loads((half / "results.json").read_text())
    assert [p["scores"] for p in resumed["curve"]] == [p["scores"] for p in finished["curve"]]


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
    env = {**os.environ, "MINARI_DATASETS_PATH": str(minari_root), "JAX_PLATFORMS": "cpu"}
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
