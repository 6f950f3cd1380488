"""`python -m experiments.pretrain_flow`, and `experiments.run` reusing what it saved."""

import json
import signal
import subprocess
import sys

import jax
import numpy as np

from .conftest import REPO, cli_env, run_killed_after_epoch, run_signalled

FLOW = ["--env=maze2d-umaze", "--preset=quick", "--seed=1", "--flow_blocks=2", "--flow_epochs=2",
        "--flow_batch_size=256", "--noprogress"]


def cli(module, args, root):
    env = cli_env(root)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_one_flow_per_seed_then_reused_by_run(minari_root, tmp_path):
    proc = cli("experiments.pretrain_flow", [*FLOW, "--num_seeds=2", f"--workdir={tmp_path}"], minari_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads((tmp_path / "flow" / "flow.json").read_text())
    assert saved["num_seeds"] == 2 and len(saved["best_val_nll"]) == 2
    assert len(set(saved["best_val_nll"])) == 2  # two flows from two keys, not one copied
    assert "validation NLL" in proc.stdout

    run = cli("experiments.run", [
        *FLOW, "--num_seeds=2", "--flow_per_seed", f"--flow_dir={tmp_path / 'flow'}",
        f"--workdir={tmp_path / 'run'}", "--num_updates=20", "--eval_every=20",
        "--eval_episodes=1", "--final_eval_episodes=1", "--batch_size=32",
    ], minari_root)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "reusing the pretrained flow" in run.stdout and "pretraining" not in run.stdout


def test_missing_dataset_names_the_command(tmp_path):
    proc = cli("experiments.pretrain_flow", [*FLOW, f"--workdir={tmp_path}"], tmp_path / "empty")
    assert proc.returncode == 2 and "experiments.make_dataset --env=maze2d-umaze" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_killed_pretraining_resumes_to_the_same_flow_bit_for_bit(minari_root, tmp_path):
    from lfjax.checkpoints import load_pretrained_flow

    flags = [*[f for f in FLOW if not f.startswith("--flow_epochs")], "--flow_epochs=4", "--num_seeds=2"]
    reference = cli("experiments.pretrain_flow", [*flags, f"--workdir={tmp_path / 'ref'}"], minari_root)
    assert reference.returncode == 0, reference.stderr[-3000:]

    workdir = tmp_path / "w"
    killed = run_killed_after_epoch(2, "experiments.pretrain_flow", [*flags, f"--workdir={workdir}"], minari_root)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    flow_dir = workdir / "flow"
    assert sorted(p.name for p in (flow_dir / "progress").iterdir()) == ["1", "2"]
    assert not (flow_dir / "flow.json").exists()  # unfinished: never taken for a flow

    again = cli("experiments.pretrain_flow", [*flags, f"--workdir={workdir}"], minari_root)
    assert again.returncode == 2 and "pass --resume" in again.stderr and "Traceback" not in again.stderr
    resumed = cli("experiments.pretrain_flow", [*flags, f"--workdir={workdir}", "--resume"], minari_root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming the flow's pretraining after epoch 2/4" in resumed.stdout
    assert "flow epoch 1/4" not in resumed.stdout and "flow epoch 3/4" in resumed.stdout
    assert not (flow_dir / "progress").exists()

    ours = json.loads((flow_dir / "flow.json").read_text())
    theirs = json.loads((tmp_path / "ref" / "flow" / "flow.json").read_text())
    for key in ("history", "best_epoch", "best_val_nll", "dataset", "flow_config"):
        assert ours[key] == theirs[key], key
    for a, b in zip(jax.tree_util.tree_leaves(load_pretrained_flow(flow_dir).params),
                    jax.tree_util.tree_leaves(load_pretrained_flow(tmp_path / "ref" / "flow").params)):
        np.testing.assert_array_equal(a, b)


def test_sigint_stops_the_pretraining_after_its_epoch_and_resume_finishes_it(minari_root, tmp_path):
    """Ctrl-C (or SIGTERM) during epoch 1 of 2: that epoch ends and is checkpointed, one line
    says where it stopped and the command that continues it, exit status 130; that command
    finishes the flow. (Before: KeyboardInterrupt, a traceback.)"""
    workdir = tmp_path / "w"
    proc = run_signalled("epoch", 1, ["SIGINT"], "experiments.pretrain_flow", [*FLOW, f"--workdir={workdir}"],
                         minari_root)
    assert proc.returncode == 130, proc.stderr[-3000:]
    flow_dir = workdir / "flow"
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"interrupted by SIGINT after flow epoch 1 of 2; its progress is saved in "
                           f"{flow_dir / 'progress'}; continue with: python -m experiments.pretrain_flow "), line
    assert line.endswith(" --resume") and "flow epoch 2/2" not in proc.stdout
    assert (flow_dir / "progress" / "1").is_dir() and not (flow_dir / "flow.json").exists()
    resumed = cli("experiments.pretrain_flow", [*FLOW, f"--workdir={workdir}", "--resume"], minari_root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming the flow's pretraining after epoch 1/2" in resumed.stdout
    assert [h["epoch"] for h in json.loads((flow_dir / "flow.json").read_text())["history"]] == [1, 2]
