"""`--sweep`: a hyperparameter grid from the command line, its files, and its bad inputs."""

import csv
import json

import pytest

from .test_run import TINY, run


def test_a_grid_run_writes_members_summary_and_sweep_csv(minari_root, tmp_path):
    workdir = tmp_path / "w"
    proc = run([*TINY, "--num_updates=200", "--sweep=awac_lambda=0.3,1", "--sweep=tau=0.005,0.02",
                f"--workdir={workdir}"], minari_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert results["config"]["sweep"] == [["awac_lambda", [0.3, 1.0]], ["tau", [0.005, 0.02]]]
    members = results["members"]
    assert len(members) == 8 and {m["seed"] for m in members} == {3, 4}
    assert members[2]["config"] == {"awac_lambda": 0.3, "tau": 0.02}
    assert all(len(m["scores"]) == 2 for m in members)  # one per evaluation
    assert len(results["summary"]) == 4 and results["best"] == results["summary"][0]["config"]
    with open(workdir / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 * 2 and set(rows[0]) == {"updates", "member", "awac_lambda", "tau",
                                                   "seed", "score", "failed"}
    assert (workdir / "curve.png").is_file()
    assert "best awac_lambda=" in proc.stdout and " 1. " in proc.stdout


@pytest.mark.parametrize("flags, message", [
    (["--sweep=batch_size=64,128"], "--sweep=batch_size: batch_size changes shapes"),
    (["--sweep=hidden=1"], "what can be swept: awac_lambda, tau, actor_lr, critic_lr, gamma, weight_clip"),
    (["--sweep=tau=0.01,fast"], "--sweep=tau=0.01,fast: 'fast' is not a number"),
    (["--sweep=tau=0.01", "--sweep=tau=0.02"], "--sweep=tau is given twice"),
    (["--sweep=tau="], "--sweep=tau has no values"),
    (["--sweep=tau"], "--sweep=tau does not parse; write --sweep=NAME=V1,V2"),
    (["--sweep=tau=0.01,7"], "--sweep: tau must be in (0, 1], got 7.0"),
    (["--tau=0.01", "--sweep=tau=0.01,0.02"], "--tau and --sweep=tau=... both set tau"),
    (["--algo=bc", "--sweep=tau=0.01,0.02"], "tau does not apply to --algo=bc"),
])
def test_bad_sweeps_are_one_line_and_write_nothing(flags, message, minari_root, tmp_path):
    args = [a for a in TINY if not a.startswith("--flow_")] if "--algo=bc" in flags else TINY
    proc = run([*args, *flags, f"--workdir={tmp_path / 'w'}"], minari_root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "w").exists()
