"""`python -m experiments.convert_d4rl` as a user runs it, on a small synthetic D4RL-style
hdf5 file: what it writes and prints, --overwrite, and one-line errors with exit status 2."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from .conftest import REPO, cli_env


def write_d4rl(path, obs_dim=11, action_dim=3):
    """12 steps: a terminal after step 4, a timeout after step 9, then a 2-step trailing piece."""
    n = 12
    rng = np.random.default_rng(0)
    stream = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    terminals[4], timeouts[9] = True, True
    with h5py.File(path, "w") as f:
        f["observations"], f["next_observations"] = stream[:-1], stream[1:]
        f["actions"] = rng.uniform(-1, 1, (n, action_dim)).astype(np.float32)
        f["rewards"] = rng.normal(size=n).astype(np.float32)
        f["terminals"], f["timeouts"] = terminals, timeouts
    return path


def convert(args, root):
    env = cli_env(root)
    return subprocess.run(
        [sys.executable, "-m", "experiments.convert_d4rl", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )


def test_writes_the_dataset_and_says_what_next(tmp_path):
    root, path = tmp_path / "minari", write_d4rl(tmp_path / "hopper_medium_replay-v2.hdf5")
    args = ["--env=hopper-medium-replay", f"--hdf5={path}"]
    done = convert(args, root)
    assert done.returncode == 0, done.stderr[-2000:]
    target = root / "lfjax" / "hopper-medium-replay-v0"
    assert f"wrote lfjax/hopper-medium-replay-v0 to {target}" in done.stdout
    assert "12 transitions in 3 episodes (1 terminated, 2 truncated)" in done.stdout
    assert "from hopper_medium_replay-v2.hdf5" in done.stdout
    assert "Next: python -m experiments.run --env=hopper-medium-replay" in done.stdout
    assert (target / "data" / "metadata.json").is_file()

    again = convert(args, root)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines() == [
        f"error: Minari dataset lfjax/hopper-medium-replay-v0 already exists at {target}; "
        f"pass --overwrite to replace it."
    ]
    replaced = convert([*args, "--overwrite"], root)
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert "wrote lfjax/hopper-medium-replay-v0" in replaced.stdout


@pytest.mark.parametrize(
    "env, hdf5, expected",
    [
        ("hopper-random", "good", "accepts halfcheetah-medium-replay, hopper-medium-replay, "
                                  "walker2d-medium-replay"),
        ("maze2d-umaze", "good", "python -m experiments.make_dataset --env=maze2d-umaze"),
        ("hopper-medium", "good", "minari download mujoco/hopper/medium-v0"),
        ("hopper-medium-replay", "absent", "absent.hdf5: no such file"),
        ("walker2d-medium-replay", "good",
         "'observations' has shape (12, 11) but walker2d-medium-replay needs 17 columns"),
    ],
)
def test_errors_are_one_line_with_exit_status_2(tmp_path, env, hdf5, expected):
    path = write_d4rl(tmp_path / "good.hdf5") if hdf5 == "good" else tmp_path / "absent.hdf5"
    root = tmp_path / "minari"
    proc = convert([f"--env={env}", f"--hdf5={path}"], root)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert expected in lines[0]
    assert not (root / "lfjax").exists()
