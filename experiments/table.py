"""The results table: one run per env x algorithm, then a table and a figure of all of them.

    python -m experiments.table --envs=maze2d-umaze,maze2d-medium,maze2d-large \
        --algos=latent_awac,awac,bc --seeds=100-102

Each cell is the run `experiments.run --env=<env> --algo=<algo>` would make with the same
preset, seeds and overrides, in <workdir>/<env>-<algo> (results.json, curve.png, checkpoints
and, for latent_awac, its flow), made by the same function (experiments.run.run) in this
process, one cell after the other. A cell whose run finished with this configuration is reused
without training; one that was interrupted is resumed (experiments.run --resume); a cell
directory holding another configuration stops the command before anything trains. Then
<workdir>/table.md (a row per env, a column per algorithm: mean ± std of the final normalized
score, each seed's score, the wall time), table.csv (a row per cell) and table.png (a panel per
env, a curve per algorithm).

Every env, algorithm, seed and override is checked before anything is written: a mistake is
one line and exit status 2, with no directory created.
"""

import dataclasses
import datetime
import pathlib
import shlex
import sys

from absl import app, flags

from experiments import shared_flags

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_list("envs", None, "Environments, one row each, e.g. "
                      "maze2d-umaze,maze2d-medium,maze2d-large.")
    flags.DEFINE_list("algos", ["latent_awac", "awac", "bc"], "Algorithms, one column each (of "
                      "latent_awac, awac, bc).")
    flags.DEFINE_string("seeds", None, "Consecutive seeds, every cell trains them all at once: "
                        "a range 100-102 or a list 100,101,102 (default: the preset's, 0-2).")
    flags.DEFINE_string("workdir", "runs/table", "The cells' runs go to <workdir>/<env>-<algo>; "
                        "table.md, table.csv and table.png to <workdir>.")
    shared_flags.define_overrides()  # --preset --num_updates --eval_every ... --critic_lr
    shared_flags.define()  # --flow_epochs --flow_batch_size --flow_blocks --progress --distributed


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of the table: env x algo, with its configuration and directory."""

    env: str
    algo: str
    config: object  # lfjax.configs.RunConfig
    workdir: pathlib.Path


def parse_seeds(text: str) -> tuple[int, int]:
    """--seeds -> (first seed, number of seeds): "100-102" and "100,101,102" -> (100, 3),
    "7" -> (7, 1). A run trains seed, seed+1, ...: other sets of seeds are refused
    (ValueError saying what to write)."""
    example = "write a range such as --seeds=100-102 or a list such as --seeds=100,101,102"
    try:
        if "-" in text:
            first, last = (int(part) for part in text.split("-"))
            if last < first:
                raise ValueError(f"--seeds={text}: the range ends before it starts; {example}")
            return first, last - first + 1
        seeds = [int(part) for part in text.split(",")]
    except ValueError as e:
        if str(e).startswith("--seeds"):
            raise
        raise ValueError(f"--seeds={text} does not parse; {example}") from None
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        raise ValueError(f"--seeds={text}: the seeds must be consecutive and increasing (a run "
                         f"trains seed, seed+1, ... at once); {example}, or make one table per "
                         "run of consecutive seeds")
    return seeds[0], len(seeds)


def check_names(envs: list[str], algos: list[str]) -> None:
    """ValueError naming the first unknown or repeated env or algorithm, and the known ones."""
    from lfjax import data
    from lfjax.configs import ALGOS

    if not envs:
        raise ValueError(f"--envs is required, e.g. --envs=maze2d-umaze; known: {', '.join(data.env_names())}")
    if not algos:
        raise ValueError(f"--algos is empty; choose from: {', '.join(ALGOS)}")
    for env in envs:
        data.get_env_spec(env)  # UnknownEnvError lists the known names
    for algo in algos:
        if algo not in ALGOS:
            raise ValueError(f"unknown --algos entry {algo!r}; choose from: {', '.join(ALGOS)}")
    for flag, names in (("--envs", envs), ("--algos", algos)):
        repeated = [n for i, n in enumerate(names) if n in names[:i]]
        if repeated:
            raise ValueError(f"{flag} names {repeated[0]} twice; give each once")


def main(argv) -> int:
    from experiments import cli, run

    if (status := cli.start_cli(argv)) is not None:
        return status
    try:
        envs, algos = list(FLAGS.envs or []), list(FLAGS.algos)
        check_names(envs, algos)
        seed, num_seeds = parse_seeds(FLAGS.seeds) if FLAGS.seeds is not None else (None, None)
        shared_flags.check_preset(FLAGS.preset)

        def configs(preset: str) -> list:
            return [shared_flags.config_from_flags(env, algo, preset, seed=seed, num_seeds=num_seeds)
                    for env in envs for algo in algos]

        # Every cell's flags are checked now, under any preset; auto is resolved after joining.
        configs("paper" if FLAGS.preset == shared_flags.AUTO else FLAGS.preset)
    except ValueError as e:  # UnknownEnvError is a ValueError
        return cli.fail(str(e))
    try:
        cli.join_processes(FLAGS.distributed)
    except cli.UserError as e:
        return cli.fail(str(e))
    workdir = pathlib.Path(FLAGS.workdir)
    names = [(env, algo) for env in envs for algo in algos]
    dirs = [workdir / f"{env}-{algo}" for env, algo in names]
    saved = [run.saved_config(d) for d in dirs]

    def made_with(preset: str):
        # auto: the preset the cells already there were made with (all of them), so that a
        # table made on a CPU goes on as the same table on a machine with a GPU.
        here = [(config, s) for config, s in zip(configs(preset), saved) if s is not None]
        return f"the runs in {workdir} were made with it" if here and all(run.same_config(c, s) for c, s in here) else None

    preset = cli.choose_preset(FLAGS.preset, made_with)
    log, progress = cli.job_output(FLAGS.progress)
    log(preset.line)
    cells = [Cell(env, algo, config, d) for (env, algo), config, d in zip(names, configs(preset.name), dirs)]
    command = shlex.join(["python", "-m", "experiments.table", *sys.argv[1:]])
    return cli.run_stages(
        lambda: make_table(cells, workdir, preset, envs, algos, command, log, progress),
        after_lost_contact=f"Every finished cell is saved in {workdir}; when every host is back, "
        "rerun the same command on each: finished cells are reused, the others resume",
    )


def make_table(cells: list[Cell], workdir: pathlib.Path, preset, envs: list[str], algos: list[str],
               command: str, log, progress: bool) -> int:
    """Checks every cell's directory, runs (or reuses, or resumes) each cell, then writes the
    table. Holds workdir's lock throughout, so a second table command on it stops at once."""
    from experiments import cli, reporting, run
    from lfjax import processes
    from lfjax.checkpoints import check_free, hold_directory, read_json

    def check_dirs():
        cli.check_writable(workdir, "--workdir")
        check_free(workdir)  # another table command on the same directory
        for cell in cells:
            check_free(cell.workdir)  # e.g. an experiments.run training there
            if (cell.workdir / "config.json").exists():
                # A cell of other settings is refused now, before any cell trains.
                cli.check_workdir(cell.workdir, cell.config, resume=True)

    processes.together(check_dirs, cli.USER_ERRORS)
    with hold_directory(workdir):
        for i, cell in enumerate(cells):
            where = f"[{i + 1}/{len(cells)}] {cell.env} {cell.algo}"
            if finished(cell):
                log(f"{where}: reusing the finished run in {cell.workdir}")
                continue
            resume = (cell.workdir / "config.json").exists()
            log(f"{where}: {'resuming the run' if resume else 'running'} in {cell.workdir}")
            options = run.RunOptions(preset=preset.record(), resume=resume, progress=progress)
            status = run.run(cell.config, cell.workdir, cell.workdir / "flow", options)
            if status != 0 and not finished(cell):
                return status  # the run said why in one line; the cells before it are kept
        results = [read_json(cell.workdir / "results.json") for cell in cells]
        table = reporting.write_table(
            workdir, [{"env": c.env, "algo": c.algo, "workdir": str(c.workdir), "results": r}
                      for c, r in zip(cells, results)],
            envs=envs, algos=algos, command=command, date=datetime.date.today().isoformat())
        for line in table:
            log(line)
        log(f"table in {workdir}: table.md, table.csv, table.png")
    failed = [f"{c.env} {c.algo}" for c, r in zip(cells, results) if r["status"] == "failed"]
    if failed:
        if processes.is_leader():
            cli.fail(f"every seed of {', '.join(failed)} failed (non-finite); the table shows them "
                     "as failed", status=1)
        return 1
    return 0


def finished(cell: Cell) -> bool:
    """Whether cell's directory holds its run, done: finished, or stopped because every seed
    failed (resuming would not change it)."""
    from experiments import run
    from lfjax.checkpoints import CheckpointError, read_json

    if not run.same_config(cell.config, run.saved_config(cell.workdir)):
        return False
    try:
        return read_json(cell.workdir / "results.json").get("status") in ("finished", "failed")
    except (OSError, CheckpointError, AttributeError):
        return False


if __name__ == "__main__":
    define_flags()  # no flag marked required: a missing --envs is check_names' one line, listing the names
    app.run(lambda argv: sys.exit(main(argv)))
