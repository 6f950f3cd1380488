"""`python -m experiments.pretrain_flow`, and `experiments.run` reusing what it saved."""

import json
import os
import pathlib
import subprocess
import sys


REPO = pathlib.Path(__file__).resolve().parents[2]
FLOW = ["--env=maze2d-umaze", "--preset=quick", "--seed=1", "--flow_blocks=2", "--flow_epochs=2",
        "--flow_batch_size=256", "--noprogress"]


def cli(module, args, root):
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root), "JAX_PLATFORMS": "cpu"}
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
