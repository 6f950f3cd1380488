"""`python -m experiments.run` end to end on a tiny configuration, as a user runs it."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from .conftest import REPO, cli_env, run_killed_after_epoch

TINY = [
    "--env=maze2d-umaze", "--preset=quick", "--num_seeds=2", "--seed=3",
    "--flow_blocks=2", "--flow_epochs=2", "--flow_batch_size=256",
    "--num_updates=300", "--eval_every=100", "--eval_episodes=2", "--final_eval_episodes=3", "--batch_size=64",
    "--noprogress",
]


def run(args, root, cwd=REPO, **kwargs):
    env = cli_env(root)
    return subprocess.run(
        [sys.executable, "-m", "experiments.run", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kwargs,
    )


@pytest.fixture(scope="module")
def finished(minari_root, tmp_path_factory):
    """TINY as a user first runs it: no --preset (auto, which is quick on this CPU: the same
    configuration as TINY's --preset=quick) and no --workdir (runs/<env>-<preset> in the
    current directory)."""
    here = tmp_path_factory.mktemp("run")
    proc = run([a for a in TINY if a != "--preset=quick"], minari_root, cwd=here)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return here / "runs" / "maze2d-umaze-quick", proc


def test_without_preset_the_first_line_chooses_quick_on_a_cpu(finished):
    workdir, proc = finished
    assert proc.stdout.splitlines()[0] == (
        "preset: quick (JAX sees no accelerator, only cpu; the paper protocol, 1,000,000 updates "
        "per seed, is --preset=paper, ~10 h per seed on a 2-core CPU)")
    results = json.loads((workdir / "results.json").read_text())
    assert results["preset"] == {"name": "quick", "chosen": "auto: JAX sees no accelerator, only cpu"}
    assert results["wall_seconds"] > sum(100 / p["updates_per_second"] for p in results["curve"])


def test_writes_every_output(finished):
    workdir, proc = finished
    for name in ("results.json", "curve.csv", "curve.png", "config.json", "flow/flow.json"):
        assert (workdir / name).is_file(), name
    results = json.loads((workdir / "results.json").read_text())
    assert results["status"] == "finished" and results["updates"] == 300
    assert results["config"]["seeds"] == [3, 4]
    assert [p["updates"] for p in results["curve"]] == [100, 200, 300]
    assert [p["episodes"] for p in results["curve"]] == [2, 2, 3]  # the last: --final_eval_episodes
    assert len(results["final"]["scores"]) == 2 and np.isfinite(results["final"]["mean"])
    assert len(results["flow"]["history"]) == 2 and "jax" in results["versions"]
    assert "flow BC (z ~ U)" in results["baselines"]
    rows = (workdir / "curve.csv").read_text().strip().splitlines()
    assert rows[0].startswith("updates,mean,std,seed_3,seed_4") and len(rows) == 4
    assert "normalized score" in proc.stdout


def test_curve_records_the_training_metrics(finished):
    """Every evaluation records the chunk's mean training metrics, all finite. Whether the
    agent learns is not something 300 updates on maze2d can show (a falling actor loss is
    what behaviour cloning shows too): tests/agent/test_agent_train.py's
    test_awac_beats_behaviour_cloning_where_cloning_fails checks that."""
    workdir, _ = finished
    curve = json.loads((workdir / "results.json").read_text())["curve"]
    for point in curve:
        for name in ("critic_loss", "actor_loss", "q_mean", "weight_mean", "weight_clipped_frac"):
            assert np.isfinite(point[name]), (point["updates"], name)


def test_killed_run_resumes_to_identical_results(finished, minari_root, tmp_path):
    """Killed (SIGKILL) after an evaluation, the run resumes from its last checkpoint, not
    from update 0: runs are deterministic, so identical final results alone would not show it.
    The resumed run says where it starts, and keeps the killed run's curve points as they
    were (their measured updates/s included) instead of computing them again."""
    reference, _ = finished
    workdir = tmp_path / "w"
    env = cli_env(minari_root)
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.run", *TINY, f"--workdir={workdir}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while True:  # kill it as soon as it has reported an evaluation
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no evaluation was reported"
        try:
            if json.loads((workdir / "results.json").read_text())["status"] == "running":
                break
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    killed = json.loads((workdir / "results.json").read_text())
    assert killed["status"] == "running" and 0 < killed["updates"] < 300
    committed = max(int(d.name) for d in (workdir / "checkpoints").iterdir() if d.name.isdigit())
    assert killed["updates"] <= committed < 300
    # The dead run's lock file is still there, naming it; its lock is not (the kernel dropped it).
    assert json.loads((workdir / "lfjax.lock").read_text())["pid"] == proc.pid
    # experiments.evaluate of what it left says that the run never finished.
    stopped = evaluate([f"--workdir={workdir}", "--episodes=1"], minari_root)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert f"stopped at {killed['updates']} of 300 updates without finishing" in stopped.stdout

    resumed = run([*TINY, f"--workdir={workdir}", "--resume"], minari_root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from the checkpoint at {committed} updates" in resumed.stdout, resumed.stdout
    assert "flow behaviour-cloning policy" not in resumed.stdout  # a fresh start evaluates it
    ours = json.loads((workdir / "results.json").read_text())
    assert ours["status"] == "finished" and ours["updates"] == 300
    assert ours["curve"][: len(killed["curve"])] == killed["curve"]  # kept, not recomputed
    theirs = json.loads((reference / "results.json").read_text())
    assert [p["updates"] for p in ours["curve"]] == [100, 200, 300]
    assert [p["scores"] for p in ours["curve"]] == [p["scores"] for p in theirs["curve"]]
    assert [p["critic_loss"] for p in ours["curve"]] == [p["critic_loss"] for p in theirs["curve"]]
    assert ours["final"] == theirs["final"] and ours["baselines"] == theirs["baselines"]
    assert ours["preset"] == {"name": "quick", "chosen": "given"}  # TINY's --preset=quick


def files(directory):
    """{path: (size, mtime)} of every file under directory."""
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in directory.rglob("*") if p.is_file()}


def test_a_second_command_on_a_running_workdir_is_refused_naming_the_first(minari_root, tmp_path):
    """Two terminals: a run, then (while it trains) a second run, pretrain_flow and evaluate on
    its workdir. The writers are refused in one line naming it, with nothing written; evaluate
    says it reads a run still training; the first run finishes untouched."""
    workdir = tmp_path / "w"
    env = cli_env(minari_root)
    first = subprocess.Popen(
        [sys.executable, "-m", "experiments.run", *TINY, f"--workdir={workdir}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 300
        while not (workdir / "results.json").exists() and first.poll() is None:
            assert time.time() < deadline, "no first evaluation"
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)  # hold it mid-run, lock held, for as long as we need
        before = files(workdir)
        second = run([*TINY, f"--workdir={workdir}", "--resume"], minari_root)
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"in use by pid {first.pid} on host" in second.stderr and "experiments.run" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
        flows = subprocess.run(
            [sys.executable, "-m", "experiments.pretrain_flow", "--env=maze2d-umaze", "--flow_blocks=2",
             "--flow_epochs=1", "--noprogress", f"--workdir={workdir}"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
        )
        assert flows.returncode == 2 and f"pid {first.pid}" in flows.stderr, flows.stderr[-3000:]
        assert files(workdir) == before  # neither wrote anything
        evaluated = evaluate([f"--workdir={workdir}", "--episodes=1"], minari_root)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        assert "is still training" in evaluated.stdout and f"pid {first.pid}" in evaluated.stdout
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=600) == 0, first.stderr.read()[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert results["status"] == "finished" and results["updates"] == 300
    assert [p["updates"] for p in results["curve"]] == [100, 200, 300]
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["200", "300"]


def test_a_run_killed_while_pretraining_its_flow_resumes_to_identical_results(finished, minari_root, tmp_path):
    reference, _ = finished
    workdir = tmp_path / "w"
    killed = run_killed_after_epoch(1, "experiments.run", [*TINY, f"--workdir={workdir}"], minari_root)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (workdir / "flow" / "progress" / "1").is_dir() and not (workdir / "flow" / "flow.json").exists()
    resumed = run([*TINY, f"--workdir={workdir}", "--resume"], minari_root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming the flow's pretraining after epoch 1/2" in resumed.stdout
    ours = json.loads((workdir / "results.json").read_text())
    theirs = json.loads((reference / "results.json").read_text())
    assert ours["flow"] == theirs["flow"]  # history, best epoch and NLL: the same flow
    assert [p["scores"] for p in ours["curve"]] == [p["scores"] for p in theirs["curve"]]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env=maze2d-umazee"], "known: maze2d-umaze"),
        (["--env=maze2d-umaze", "--num_seeds=0"], "--num_seeds must be a positive"),
        (["--env=maze2d-umaze", "--num_updates=-5"], "--num_updates must be a positive"),
        (["--env=maze2d-umaze", "--batch_size=0"], "batch_size must be positive"),
        (["--env=maze2d-umaze", "--preset=fast"], "unknown --preset"),
        (["--env=maze2d-umaze", "--batch_size=100000"], "larger than the dataset"),
        (["--env=hopper-medium"], "minari download"),
        (["--env=maze2d-umaze", "--tau_final=0.001"], "tau_final needs tau_half_life"),
        (["--env=maze2d-umaze", "--num_critics=0"], "num_critics must be positive"),
        (["--env=maze2d-umaze", "--algo=bc", "--critic_layer_norm"], "--critic_layer_norm does not apply to --algo=bc"),
    ],
)
def test_bad_input_is_one_clear_line(minari_root, tmp_path, args, message):
    workdir = tmp_path / "w"
    proc = run([*args, f"--workdir={workdir}", "--noprogress"], minari_root)
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not workdir.exists()


def _with(**flags):
    """TINY with some flags set otherwise."""
    return [*[a for a in TINY if a.split("=")[0][2:] not in flags], *(f"--{k}={v}" for k, v in flags.items())]


def test_workdir_of_another_config_is_refused(finished, minari_root):
    """A workdir holds one run: another configuration is refused, even with --resume; the same
    one needs --resume; on --resume only how long it trains and how it is evaluated may change,
    and never to fewer updates than it has done (a longer run: tests/experiments/test_reliability.py)."""
    workdir, _ = finished
    before = files(workdir)
    proc = run([*_with(batch_size=32), f"--workdir={workdir}", "--resume"], minari_root)
    assert proc.returncode == 2 and "different configuration (differs in: agent)" in proc.stderr, proc.stderr
    assert "agent.batch_size 64 -> 32 (saved -> now)" in proc.stderr, proc.stderr  # the flag to restore
    assert "on --resume only --num_updates, --eval_every, --eval_episodes, --final_eval_episodes may change" in proc.stderr
    proc = run([*TINY, f"--workdir={workdir}"], minari_root)
    assert proc.returncode == 2 and "already holds this run; pass --resume" in proc.stderr, proc.stderr
    proc = run([*_with(num_updates=400), f"--workdir={workdir}"], minari_root)
    assert proc.returncode == 2 and ("already holds this run (with --num_updates=300); pass --resume to continue it "
                                     "with the new settings") in proc.stderr, proc.stderr
    proc = run([*_with(num_updates=200), f"--workdir={workdir}", "--resume"], minari_root)
    assert proc.returncode == 2 and ("has done 300 updates already; --num_updates must be at least 300"
                                     in proc.stderr), proc.stderr
    assert files(workdir) == before


def evaluate(args, root):
    env = cli_env(root)
    return subprocess.run([sys.executable, "-m", "experiments.evaluate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_evaluate_reproduces_the_runs_last_evaluation(finished, minari_root):
    workdir, _ = finished
    last = json.loads((workdir / "results.json").read_text())["curve"][-1]
    assert last["episodes"] == 3  # the last evaluation uses --final_eval_episodes
    proc = evaluate([f"--workdir={workdir}", "--episodes=3", f"--eval_seed={last['eval_seed']}"], minari_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((workdir / "evaluations" / f"step-300-3ep-sample-seed{last['eval_seed']}.json").read_text())
    assert record["step"] == 300 and record["seeds"] == [3, 4]
    assert record["scores"] == last["scores"]  # same checkpoint, episodes and noise: same scores
    assert np.asarray(record["returns"]).shape == (2, 3) and "normalized score" in proc.stdout


def test_evaluate_an_earlier_checkpoint_with_mean_actions(finished, minari_root):
    workdir, _ = finished
    runs = [evaluate([f"--workdir={workdir}", "--step=200", "--episodes=3", "--deterministic"], minari_root)
            for _ in range(2)]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((workdir / "evaluations" / "step-200-3ep-mean-seed0.json").read_text())
    assert record["actions"] == "mean" and np.asarray(record["normalized"]).shape == (2, 3)
    assert runs[0].stdout == runs[1].stdout  # deterministic policy, same episodes


@pytest.mark.parametrize(
    "args, message",
    [
        (["--step=100"], "choose --step from [200, 300]"),
        (["--episodes=0"], "--episodes must be positive"),
    ],
)
def test_evaluate_bad_input_is_one_clear_line(finished, minari_root, args, message):
    workdir, _ = finished
    proc = evaluate([f"--workdir={workdir}", *args], minari_root)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_evaluate_a_directory_without_a_run(minari_root, tmp_path):
    proc = evaluate([f"--workdir={tmp_path}"], minari_root)
    assert proc.returncode == 2 and "holds no experiments.run results" in proc.stderr


def test_a_run_on_another_runs_flow_dir_with_another_seed_is_refused(finished, minari_root, tmp_path):
    """--flow_dir naming a finished run's flow, with another --seed: that run's actors decode
    through the flow there, so the new run stops before writing anything instead of replacing it."""
    workdir, _ = finished
    before = files(workdir / "flow")
    proc = run([*TINY, "--seed=5", f"--workdir={tmp_path / 'second'}", f"--flow_dir={workdir / 'flow'}"],
               minari_root)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"{workdir / 'flow'} holds a flow made otherwise (seed 3 -> 5)" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert files(workdir / "flow") == before
    assert not (tmp_path / "second" / "config.json").exists()


def test_evaluate_through_another_flow_is_refused(finished, minari_root, tmp_path):
    """The same architecture, other numbers (state statistics): the actors would act at random
    through it, so evaluate names both flows instead of printing scores."""
    from lfjax.checkpoints import load_pretrained_flow, save_pretrained_flow

    workdir, _ = finished
    flow = load_pretrained_flow(workdir / "flow")
    save_pretrained_flow(tmp_path / "flow", flow.flow, flow.params, flow.state_mean + 1.0, flow.state_std,
                         flow.info)
    proc = evaluate([f"--workdir={workdir}", "--episodes=1", f"--flow_dir={tmp_path / 'flow'}"], minari_root)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"the flow in {tmp_path / 'flow'} (seed 3, num_epochs 2" in proc.stderr
    assert f"not the one the run in {workdir} trained through" in proc.stderr
    assert not (workdir / "evaluations" / "step-300-1ep-sample-seed0.json").exists()
