"""Run tracking (experiments/tracking.py): TensorBoard event files that parse back with the right
tags and steps, an offline W&B run directory, and one clear line when a tracker's package is
missing."""

import json
import pathlib
import struct
import subprocess
import sys

import pytest

from experiments import tracking

from .conftest import REPO, cli_env

TINY = [
    "--env=maze2d-umaze", "--preset=quick", "--num_seeds=2", "--seed=3",
    "--flow_blocks=2", "--flow_epochs=2", "--flow_batch_size=256",
    "--num_updates=200", "--eval_every=100", "--eval_episodes=2", "--final_eval_episodes=2",
    "--batch_size=64", "--noprogress",
]
METRICS = ("critic_loss", "actor_loss", "q_mean", "weight_mean", "weight_clipped_frac", "updates_per_second")


def _crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_scalars(log_dir: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in log_dir's event files, {tag: [(step, value)]}, read as TensorBoard reads
    them: TFRecord framing with both CRCs checked, then the Event protocol buffer."""
    from tensorboardX.proto import event_pb2

    scalars = {}
    files = sorted(log_dir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {log_dir}"
    for path in files:
        data, i = path.read_bytes(), 0
        while i < len(data):
            header = data[i:i + 8]
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[i + 8:i + 12])[0] == _masked_crc32c(header)
            record = data[i + 12:i + 12 + length]
            assert struct.unpack("<I", data[i + 12 + length:i + 16 + length])[0] == _masked_crc32c(record)
            i += 16 + length
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def fake_results(curve_len: int, status: str = "running") -> dict:
    curve = [{"updates": 100 * (i + 1), "eval_seed": i, "episodes": 2, "scores": [10.0 * i, 20.0 * i],
              "mean": 15.0 * i, "std": 5.0 * i, **{m: 0.5 + i for m in METRICS}} for i in range(curve_len)]
    return {
        "config": {"seeds": [3, 4]}, "status": status, "updates": 100 * curve_len,
        "flow": {"history": [{"epoch": e, "train_nll": [1.0 / e, 3.0 / e], "val_nll": [2.0 / e, 4.0 / e]}
                             for e in (1, 2)]},
        "final": {"scores": curve[-1]["scores"], "mean": curve[-1]["mean"], "std": curve[-1]["std"]},
        "baselines": {"random policy": 0.0}, "curve": curve,
    }


def test_tensorboard_tags_and_steps(tmp_path):
    tracker = tracking.open_tracker(log_dir=str(tmp_path / "tb"), use_wandb=False,
                                    workdir=tmp_path / "w", config={"config": {"env": "x"}})
    tracker.report(fake_results(1))
    tracker.report(fake_results(2))
    tracker.report(fake_results(2, "finished"))  # train_agent reports the last point twice
    tracker.close()
    scalars = read_scalars(tmp_path / "tb")
    assert scalars["eval/score_mean"] == [(100, 0.0), (200, 15.0)]  # each evaluation once
    assert scalars["eval/score/seed_4"] == [(100, 0.0), (200, 20.0)]
    assert [step for step, _ in scalars["eval/score_std"]] == [100, 200]
    for metric in METRICS:
        assert scalars[f"train/{metric}"] == [(100, 0.5), (200, 1.5)], metric
    assert scalars["flow/val_nll"] == [(1, 3.0), (2, 1.5)]  # mean over the flows, per epoch
    assert scalars["flow/train_nll"] == [(1, 2.0), (2, 1.0)]
    assert not {"train/episodes", "train/eval_seed", "train/scores"} & set(scalars)


@pytest.mark.parametrize("flag, module, extra", [("--log_dir", "tensorboardX", "tensorboard"),
                                                 ("--wandb", "wandb", "wandb")])
def test_missing_package_names_the_extra(monkeypatch, flag, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    message = rf'^{flag} needs the {module} package .*lfjax\[{extra}\] .*pip install -e "\.\[{extra}\]"\)$'
    with pytest.raises(ValueError, match=message):
        tracking.check_installed("tb" if flag == "--log_dir" else None, flag == "--wandb")


def run(args, root, **env):
    env = cli_env(root, **env)
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("flag, module, extra", [("--log_dir", "tensorboardX", "tensorboard"),
                                                 ("--wandb", "wandb", "wandb")])
def test_run_without_the_package_is_one_line(minari_root, tmp_path, flag, module, extra):
    """The package hidden from a real run: exit 2, one line naming the extra, nothing written."""
    blocker = tmp_path / "blocked" / module
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(f'raise ImportError("No module named {module!r}")\n')
    workdir, log_dir = tmp_path / "w", tmp_path / "tb"
    arg = f"--log_dir={log_dir}" if flag == "--log_dir" else "--wandb"
    proc = run(["--env=maze2d-umaze", f"--workdir={workdir}", arg], minari_root,
               PYTHONPATH=str(tmp_path / "blocked"), WANDB_MODE="offline")
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    expected = (f"error: {flag} needs the {module} package (No module named '{module}'); install "
                f'the extra lfjax[{extra}] (in the lfjax checkout: pip install -e ".[{extra}]")')
    assert lines == [expected], proc.stderr[-3000:]
    assert not workdir.exists() and not log_dir.exists()


def test_log_dir_that_cannot_be_written_is_one_line(minari_root, tmp_path):
    (tmp_path / "file").write_text("")
    workdir = tmp_path / "w"
    proc = run(["--env=maze2d-umaze", f"--workdir={workdir}", f"--log_dir={tmp_path / 'file' / 'tb'}",
                "--noprogress"], minari_root)
    assert proc.returncode == 2 and "--log_dir" in proc.stderr and "is a file" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and not workdir.exists()


def test_tiny_run_with_tensorboard_and_wandb_offline(minari_root, tmp_path):
    """A whole run (dataset, flow, agent, evaluations, checkpoints) logging to both trackers
    with no network; its files are the run's usual ones plus the trackers'."""
    workdir, log_dir = tmp_path / "w", tmp_path / "tb"
    proc = run([*TINY, f"--workdir={workdir}", f"--log_dir={log_dir}", "--wandb"], minari_root,
               WANDB_MODE="offline", WANDB_SILENT="true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert results["status"] == "finished" and [p["updates"] for p in results["curve"]] == [100, 200]
    assert (workdir / "checkpoints" / "200").is_dir() and (workdir / "curve.png").is_file()

    scalars = read_scalars(log_dir)
    for tag in ("eval/score_mean", "eval/score_std", "eval/score/seed_3", "eval/score/seed_4",
                *(f"train/{m}" for m in METRICS)):
        assert [step for step, _ in scalars[tag]] == [100, 200], tag
    for i, point in enumerate(results["curve"]):
        assert scalars["eval/score_mean"][i][1] == pytest.approx(point["mean"], rel=1e-5, abs=1e-5)
        assert scalars["train/critic_loss"][i][1] == pytest.approx(point["critic_loss"], rel=1e-5)
    assert [step for step, _ in scalars["flow/val_nll"]] == [1, 2]

    (run_dir,) = (workdir / "wandb").glob("offline-run-*")
    assert list(run_dir.glob("run-*.wandb")), sorted(p.name for p in run_dir.iterdir())
