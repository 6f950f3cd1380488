"""`--algo`: the paper's latent AWAC and its baselines (AWAC and BC in action space) from the
same command, with the same outputs."""

import json

import numpy as np
import pytest

from .test_run import TINY, run

NO_FLOW = [a for a in TINY if not a.startswith("--flow_")]


@pytest.mark.parametrize("algo", ["awac", "bc"])
def test_baseline_runs_end_to_end_without_a_flow(algo, minari_root, tmp_path):
    workdir = tmp_path / "w"
    proc = run([*NO_FLOW, f"--algo={algo}", f"--workdir={workdir}"], minari_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert results["config"]["algo"] == algo and results["status"] == "finished"
    assert [p["updates"] for p in results["curve"]] == [100, 200, 300]
    assert np.all(np.isfinite(results["final"]["scores"]))
    assert results["baselines"] == {"random policy": 0.0}  # no flow: no flow-BC baseline
    assert not (workdir / "flow").exists() and (workdir / "curve.png").is_file()
    assert ("q_mean" in results["curve"][-1]) == (algo == "awac")  # BC trains no critics
    assert f"({algo})" in proc.stdout


def test_unknown_algo_lists_the_three(minari_root, tmp_path):
    proc = run([*TINY, "--algo=cql", f"--workdir={tmp_path / 'w'}"], minari_root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown --algo='cql'; choose one of: latent_awac, awac, bc" in proc.stderr
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("algo, flags, named", [
    ("bc", ["--tau=0.01", "--critic_lr=1e-3"], "--tau, --critic_lr do not apply to --algo=bc"),
    ("awac", ["--flow_epochs=3"], "--flow_epochs does not apply to --algo=awac (it uses no flow)"),
])
def test_flags_that_do_not_apply_are_refused(algo, flags, named, minari_root, tmp_path):
    proc = run([*NO_FLOW, f"--algo={algo}", *flags, f"--workdir={tmp_path / 'w'}"], minari_root)
    assert proc.returncode == 2 and named in proc.stderr, proc.stderr
    assert not (tmp_path / "w").exists()
