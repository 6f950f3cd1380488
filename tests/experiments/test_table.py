"""`python -m experiments.table` end to end on a tiny configuration: every env x algorithm cell
runs (killed once, then resumed), the table's files agree with the cells' results.json, a
second command reuses the finished cells, and bad input is one line with nothing written."""

import csv
import json
import signal
import subprocess
import sys
import time

import pytest

from experiments import reporting
from lfjax.stages.agent import FLOW_BC

from .conftest import REPO, cli_env
from .test_run import files

ALGOS = ["latent_awac", "awac", "bc"]
# No --preset: auto, which is quick here (the tests' commands see only the CPU).
TINY = [
    "--envs=maze2d-umaze", f"--algos={','.join(ALGOS)}", "--seeds=3-4",
    "--flow_blocks=2", "--flow_epochs=1", "--flow_batch_size=256",
    "--num_updates=300", "--eval_every=100", "--eval_episodes=2", "--final_eval_episodes=2",
    "--batch_size=64", "--noprogress",
]


def table(args, root):
    return subprocess.run([sys.executable, "-m", "experiments.table", *args], cwd=REPO,
                          env=cli_env(root), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def made(minari_root, tmp_path_factory):
    """The table of TINY, made by a command killed (SIGKILL) after the first cell's first
    evaluation and the same command again: (workdir, the killed command's stdout, the first
    cell's results.json as the kill left it, the second command)."""
    workdir = tmp_path_factory.mktemp("table") / "t"
    first = workdir / "maze2d-umaze-latent_awac" / "results.json"
    out = workdir.parent / "killed.out"
    with open(out, "w") as stdout:
        proc = subprocess.Popen([sys.executable, "-m", "experiments.table", *TINY, f"--workdir={workdir}"],
                                cwd=REPO, env=cli_env(minari_root, PYTHONUNBUFFERED="1"),  # its lines, up to the kill
                                stdout=stdout, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while True:  # kill it as soon as its first cell has reported an evaluation
            assert proc.poll() is None, "the table ended before it could be killed"
            assert time.time() < deadline, "no evaluation was reported"
            try:
                if json.loads(first.read_text())["status"] == "running":
                    break
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    killed = json.loads(first.read_text())
    again = table([*TINY, f"--workdir={workdir}"], minari_root)
    assert again.returncode == 0, again.stderr[-3000:]
    return workdir, out.read_text(), killed, again


def cells(workdir):
    return {algo: json.loads((workdir / f"maze2d-umaze-{algo}" / "results.json").read_text())
            for algo in ALGOS}


def test_the_first_line_says_which_preset_and_why(made):
    workdir, killed_stdout, killed, again = made
    assert killed_stdout.splitlines()[0] == (
        "preset: quick (JAX sees no accelerator, only cpu; the paper protocol, 1,000,000 updates "
        "per seed, is --preset=paper, ~10 h per seed on a 2-core CPU)")
    assert killed["preset"] == {"name": "quick", "chosen": "auto: JAX sees no accelerator, only cpu"}
    # Made with auto: the same command goes on with the preset its cells were made with.
    assert again.stdout.splitlines()[0].startswith(
        f"preset: quick (the runs in {workdir} were made with it; --preset=paper with another --workdir")
    assert all(r["preset"]["name"] == "quick" for r in cells(workdir).values())


def test_a_killed_cell_resumes_and_the_others_run(made):
    workdir, _, killed, again = made
    assert killed["status"] == "running" and 0 < killed["updates"] < 300
    assert f"[1/3] maze2d-umaze latent_awac: resuming the run in {workdir / 'maze2d-umaze-latent_awac'}" in again.stdout
    assert "resuming from the checkpoint at" in again.stdout
    assert "[2/3] maze2d-umaze awac: running in" in again.stdout
    assert "[3/3] maze2d-umaze bc: running in" in again.stdout
    results = cells(workdir)
    assert all(r["status"] == "finished" and r["updates"] == 300 for r in results.values())
    assert [r["config"]["algo"] for r in results.values()] == ALGOS
    assert all(r["config"]["seeds"] == [3, 4] for r in results.values())
    latent = results["latent_awac"]
    assert latent["curve"][: len(killed["curve"])] == killed["curve"]  # kept, not recomputed
    # The segments' times add up: the resumed one trained at least the chunks after the kill.
    trained = sum(100 / p["updates_per_second"] for p in latent["curve"][len(killed["curve"]):])
    assert latent["wall_seconds"] > killed["wall_seconds"] + trained and killed["wall_seconds"] > 0


def test_table_files_agree_with_the_cells_results(made):
    workdir, _, _, again = made
    results = cells(workdir)
    with open(workdir / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["env"], r["algo"]) for r in rows] == [("maze2d-umaze", a) for a in ALGOS]
    for row in rows:
        r = results[row["algo"]]
        assert float(row["mean"]) == r["final"]["mean"] and float(row["std"]) == r["final"]["std"]
        assert [float(row["seed_3"]), float(row["seed_4"])] == r["final"]["scores"]
        assert float(row["wall_seconds"]) == r["wall_seconds"]
        assert (row["preset"], row["seeds"], row["updates"]) == ("quick", "3 4", "300")
        assert row["workdir"] == str(workdir / f"maze2d-umaze-{row['algo']}")
        bc = r["baselines"].get(FLOW_BC)
        assert (row["flow_bc"] == "") if bc is None else (float(row["flow_bc"]) == bc)
    assert rows[0]["flow_bc"] != "" and rows[1]["flow_bc"] == ""  # only latent AWAC has a flow
    text = (workdir / "table.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| maze2d-umaze |"))
    columns = [c.strip() for c in row.strip("|").split("|")]
    for algo, column in zip(ALGOS, columns[1:]):
        final = results[algo]["final"]
        assert column == (f"**{final['mean']:.1f} ± {final['std']:.1f}**<br>"
                          f"{', '.join(f'{v:.1f}' for v in final['scores'])}<br>"
                          f"{reporting.format_seconds(results[algo]['wall_seconds'])}")
    assert columns[-1] == f"{results['latent_awac']['baselines'][FLOW_BC]:.1f}"
    assert "Preset quick; seeds 3, 4; 300 updates; final evaluation 2 episodes per seed" in text
    assert "not D4RL's" in text and "not comparable with D4RL-normalized" in text
    assert row in again.stdout  # the table is printed too
    assert (workdir / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_command_reuses_every_finished_cell(made, minari_root):
    workdir, *_ = made
    before = {algo: files(workdir / f"maze2d-umaze-{algo}") for algo in ALGOS}
    proc = table([*TINY, f"--workdir={workdir}"], minari_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for i, algo in enumerate(ALGOS):
        assert f"[{i + 1}/3] maze2d-umaze {algo}: reusing the finished run in" in proc.stdout
        assert files(workdir / f"maze2d-umaze-{algo}") == before[algo]  # nothing trained or rewritten
    assert "normalized score" not in proc.stdout  # no run's last line: none ran


def test_a_cell_of_other_settings_stops_the_table_before_anything_runs(made, minari_root):
    workdir, *_ = made
    before = files(workdir)
    # Another batch size changes the result (a longer --num_updates would not: the cells would
    # resume and train on, as experiments.run --resume does).
    proc = table([*[a for a in TINY if not a.startswith("--batch_size")], "--batch_size=32",
                  f"--workdir={workdir}"], minari_root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{workdir / 'maze2d-umaze-latent_awac'} holds a run with a different configuration" in proc.stderr
    assert files(workdir) == before


@pytest.mark.parametrize("args, message", [
    (["--envs=maze2d-umaze,maze2d-huge"], "unknown environment 'maze2d-huge'; known: maze2d-umaze, "
     "maze2d-medium, maze2d-large, halfcheetah-medium"),
    (["--envs=maze2d-umaze", "--algos=latent_awac,cql"], "unknown --algos entry 'cql'; choose from: "
     "latent_awac, awac, bc"),
    (["--envs=maze2d-umaze", "--seeds=102-100"], "--seeds=102-100: the range ends before it starts"),
])
def test_bad_input_lists_what_is_known_and_writes_nothing(args, message, minari_root, tmp_path):
    workdir = tmp_path / "t"
    proc = table([*args, f"--workdir={workdir}"], minari_root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""
    assert not workdir.exists()


@pytest.mark.parametrize("text, parsed", [("100-102", (100, 3)), ("100,101,102", (100, 3)),
                                          ("7", (7, 1)), ("0-0", (0, 1))])
def test_seeds_are_a_range_or_a_list_of_consecutive_seeds(text, parsed):
    from experiments.table import parse_seeds

    assert parse_seeds(text) == parsed


@pytest.mark.parametrize("text, message", [
    ("100,102", "the seeds must be consecutive and increasing"),
    ("101,100", "the seeds must be consecutive and increasing"),
    ("100,100", "the seeds must be consecutive and increasing"),
    ("5-3", "the range ends before it starts"),
    ("a-b", "does not parse"), ("1-2-3", "does not parse"), ("-1", "does not parse"), ("", "does not parse"),
])
def test_other_seeds_are_refused_saying_what_to_write(text, message):
    from experiments.table import parse_seeds

    with pytest.raises(ValueError, match="write a range such as --seeds=100-102") as e:
        parse_seeds(text)
    assert message in str(e.value)


def fake_results(env, algo, scores, *, updates=300, wall=None, flow_bc=None, status="finished"):
    good = [s for s in scores if s is not None]
    mean = sum(good) / len(good) if good else None
    std = (sum((s - mean) ** 2 for s in good) / len(good)) ** 0.5 if good else None
    return {
        "config": {"env": env, "algo": algo, "seeds": [3, 4], "num_updates": updates, "final_eval_episodes": 5},
        "preset": {"name": "quick", "chosen": "given"}, "status": status, "updates": updates,
        "final": {"scores": scores, "mean": mean, "std": std,
                  "failed_seeds": [3 + i for i, s in enumerate(scores) if s is None]},
        "baselines": {"random policy": 0.0, **({FLOW_BC: flow_bc} if flow_bc is not None else {})},
        "dataset": {"minari_id": f"lfjax/{env}-v1"}, **({"wall_seconds": wall} if wall else {}),
        "curve": [{"updates": u, "mean": mean, "std": std, "scores": scores} for u in (100, updates)],
    }


def test_the_table_puts_each_cell_in_its_place(tmp_path):
    """Distinct numbers in every cell (the tiny end-to-end run scores 0 everywhere): rows by
    env, columns by algorithm, a failed seed, a run that recorded no time, what differs between
    envs in their row and what they share above the table."""
    given = [
        ("maze2d-umaze", "latent_awac", [90.0, 80.0], 451.0, 3.3),
        ("maze2d-umaze", "bc", [-1.5, None], 12.0, None),
        ("maze2d-large", "latent_awac", [40.0, 20.0], 7600.0, -2.0),
        ("maze2d-large", "bc", [None, None], None, None),
    ]
    cells = [{"env": env, "algo": algo, "workdir": f"w/{env}-{algo}",
              "results": fake_results(env, algo, scores, wall=wall, flow_bc=bc,
                                      updates=300 if env == "maze2d-umaze" else 600,
                                      status="failed" if scores == [None, None] else "finished")}
             for env, algo, scores, wall, bc in given]
    lines = reporting.write_table(tmp_path, cells, envs=["maze2d-umaze", "maze2d-large"],
                                  algos=["latent_awac", "bc"], command="python -m experiments.table", date="2026-12-06")
    assert lines == [
        "| env | latent_awac | bc | flow BC |",
        "|---|---|---|---|",
        "| maze2d-umaze<br>300 updates | **85.0 ± 5.0**<br>90.0, 80.0<br>7 min 31 s | "
        "**-1.5 ± 0.0**<br>-1.5, failed<br>12 s | 3.3 |",
        "| maze2d-large<br>600 updates | **30.0 ± 10.0**<br>40.0, 20.0<br>2 h 06 min | "
        "every seed failed<br>failed, failed<br>time not recorded | -2.0 |",
    ]
    text = (tmp_path / "table.md").read_text()
    assert ("Preset quick; seeds 3, 4; final evaluation 5 episodes per seed; written 2026-12-06 by "
            "`python -m experiments.table`.") in text
    with open(tmp_path / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["env"], r["algo"], r["mean"], r["seed_3"], r["seed_4"], r["wall_seconds"], r["flow_bc"])
            for r in rows] == [
        ("maze2d-umaze", "latent_awac", "85.0", "90.0", "80.0", "451.0", "3.3"),
        ("maze2d-umaze", "bc", "-1.5", "-1.5", "", "12.0", ""),
        ("maze2d-large", "latent_awac", "30.0", "40.0", "20.0", "7600.0", "-2.0"),
        ("maze2d-large", "bc", "", "", "", "", ""),
    ]
    assert rows[1]["failed_seeds"] == "4" and rows[3]["status"] == "failed"
    assert (tmp_path / "table.png").is_file()
