"""The whole CNF pipeline for many seeds at once:

    python -m experiments.run --env=maze2d-umaze

dataset (generated if missing) -> flow pretraining (or reuse) -> latent AWAC with
evaluation and checkpoints -> results.json, curve.csv, curve.png in --workdir.
--algo=awac and --algo=bc run the baselines (AWAC, behaviour cloning) in action space, no flow.
Without --preset (auto) it runs the quick preset when JAX sees only CPUs and the paper protocol
when it sees a GPU or TPU, and its first line says which and why (experiments.cli.choose_preset).
"""

import contextlib
import dataclasses
import pathlib
import sys
import time

from absl import app, flags

from experiments import shared_flags

FLAGS = flags.FLAGS


def define_flags() -> None:
    """experiments.run's flags, in absl's global registry (once per program; experiments.table
    imports this module for its functions without defining them)."""
    flags.DEFINE_string("env", None, "Dataset / environment name, e.g. maze2d-umaze.")
    flags.DEFINE_string("algo", "latent_awac", "latent_awac: the paper's method; awac: the same agent "
                        "in action space (no flow); bc: behaviour cloning in action space.")
    flags.DEFINE_integer("num_seeds", None, "Seeds trained at once (paper and quick: 3).")
    flags.DEFINE_integer("seed", None, "Base seed; seeds are seed, seed+1, ... (default 0).")
    flags.DEFINE_string("workdir", None, "Output directory (default runs/<env>-<preset>, the "
                        "preset as chosen).")
    flags.DEFINE_string("flow_dir", None, "Pretrained flow to reuse or create (default <workdir>/flow).")
    flags.DEFINE_bool("flow_per_seed", None, "Pretrain one flow per seed instead of one shared flow "
                      "(the official protocol shares one).")
    flags.DEFINE_bool("resume", False, "Continue the run in --workdir from its last checkpoint (and "
                      "an unfinished flow pretraining from its last epoch).")
    flags.DEFINE_multi_string("sweep", [], "A hyperparameter grid in the same program, repeatable: "
                              "--sweep=NAME=V1,V2,... over awac_lambda, tau, actor_lr, critic_lr, "
                              "gamma, weight_clip, tau_final, tau_half_life, actor_q_weight; every "
                              "combination times --num_seeds seeds.")
    shared_flags.define_overrides()  # --preset --num_updates --eval_every ... --critic_lr
    shared_flags.define_tracking()  # --log_dir --wandb --wandb_project
    shared_flags.define()  # --flow_epochs --flow_batch_size --flow_blocks --progress --distributed


# Flags that only mean something with a flow, or with critics (refused otherwise).
FLOW_ONLY = ("flow_dir", "flow_per_seed", *shared_flags.FLOW_FLAGS)
CRITIC_ONLY = ("awac_lambda", "tau", "critic_lr", *shared_flags.STABILITY_FLAGS)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a configuration is run, beyond the configuration itself.

    Attributes:
        preset: results.json's "preset" record, {"name", "chosen"} (cli.PresetChoice.record).
        resume: continue the run in the workdir (--resume).
        progress: show progress bars.
        log_dir, wandb, wandb_project: run tracking (experiments/tracking.py).
    """

    preset: dict
    resume: bool = False
    progress: bool = True
    log_dir: str | None = None
    wandb: bool = False
    wandb_project: str = "lfjax"


def build_config(preset: str):
    """RunConfig from the flags under ``preset`` (a PRESETS name); ValueError on anything
    invalid, including flags that do not apply to --algo."""
    from lfjax.configs import SWEEPABLE, parse_sweep

    sweep = parse_sweep(FLAGS.sweep)
    both = [name for name, _ in sweep
            if name in SWEEPABLE and name in shared_flags.AGENT_FLAGS and FLAGS[name].present]
    if both:
        raise ValueError(f"--{both[0]} and --sweep={both[0]}=... both set {both[0]}; keep one")
    config = shared_flags.config_from_flags(
        FLAGS.env, FLAGS.algo, preset, sweep=sweep,
        num_seeds=FLAGS.num_seeds, seed=FLAGS.seed, flow_per_seed=FLAGS.flow_per_seed)
    unused = [] if config.uses_flow else [f for f in FLOW_ONLY if FLAGS[f].present]
    why = "it uses no flow"
    if not config.uses_critics:
        unused += [f for f in CRITIC_ONLY if FLAGS[f].present]
        why = "it uses no flow and trains no critics"
    if unused:
        raise ValueError(
            f"{', '.join('--' + f for f in unused)} do{'es' if len(unused) == 1 else ''} not apply "
            f"to --algo={config.algo} ({why}); drop {'it' if len(unused) == 1 else 'them'}"
        )
    return config


def saved_config(workdir: pathlib.Path) -> dict | None:
    """The configuration a run in ``workdir`` holds (its config.json), or None when there is
    none or it cannot be read (check_workdir says what is wrong with it later)."""
    from lfjax.checkpoints import CheckpointError, read_json

    try:
        return read_json(workdir / "config.json")
    except (OSError, CheckpointError):
        return None


def same_config(config, saved: dict | None) -> bool:
    """Whether a saved config.json holds ``config`` (as check_workdir compares them)."""
    from lfjax.checkpoints import as_json

    return saved is not None and as_json(config.to_dict()) == saved


def main(argv) -> int:
    from experiments import cli, tracking

    if (status := cli.start_cli(argv)) is not None:
        return status
    from lfjax import data

    try:
        data.get_env_spec(FLAGS.env)
        shared_flags.check_preset(FLAGS.preset)
        # Every flag is checked now, under any preset (none of the checks depends on the
        # preset's values): auto is resolved only after joining the job, below.
        build_config("paper" if FLAGS.preset == shared_flags.AUTO else FLAGS.preset)
        tracking.check_installed(FLAGS.log_dir, FLAGS.wandb)
    except ValueError as e:  # UnknownEnvError is a ValueError
        return cli.fail(str(e))
    # Only after the flags are known good: joining waits for every process of the job.
    try:
        cli.join_processes(FLAGS.distributed)
    except cli.UserError as e:
        return cli.fail(str(e))
    # auto: the preset the run already in --workdir holds (a resume on another machine
    # continues the same configuration), else by the devices. The default workdir is named
    # after the chosen preset, so only a given --workdir can hold another one.
    given = pathlib.Path(FLAGS.workdir) if FLAGS.workdir else None
    saved = saved_config(given) if given else None

    def made_with(name: str) -> str | None:
        return f"the run in {given} was made with it" if saved and same_config(build_config(name), saved) else None

    preset = cli.choose_preset(FLAGS.preset, made_with)
    log, _ = cli.job_output(FLAGS.progress)
    log(preset.line)
    config = build_config(preset.name)
    workdir = given or pathlib.Path(f"runs/{FLAGS.env}-{preset.name}")
    flow_dir = pathlib.Path(FLAGS.flow_dir) if FLAGS.flow_dir else workdir / "flow"
    options = RunOptions(preset=preset.record(), resume=FLAGS.resume, progress=FLAGS.progress,
                         log_dir=FLAGS.log_dir, wandb=FLAGS.wandb, wandb_project=FLAGS.wandb_project)
    return run(config, workdir, flow_dir, options)


def run(config, workdir: pathlib.Path, flow_dir: pathlib.Path, options: RunOptions) -> int:
    """Every stage, in every process of the job; process 0 prints and writes the files.

    From its first write to its end the run holds --workdir's lock (process 0 for the job), so
    a second command on the same workdir stops with one line naming this one; before that it
    only checks, without writing anything, that nobody else holds it."""
    from experiments import cli, stopping
    from lfjax import processes, sharding, stages
    from lfjax.checkpoints import check_free, hold_directory

    log, _ = cli.job_output(options.progress)

    def run_stages(stop):
        sharding.seed_mesh(config.num_members)  # across hosts: a member count that does not split

        def check_dirs():
            cli.check_writable(workdir, "--workdir")
            cli.check_writable(flow_dir, "--flow_dir")
            check_free(workdir)  # another process writing there: one line naming it
            check_free(flow_dir)
            if options.log_dir and processes.is_leader():  # only process 0 writes there
                cli.check_writable(pathlib.Path(options.log_dir), "--log_dir")
            cli.check_workdir(workdir, config, options.resume)

        processes.together(check_dirs, cli.USER_ERRORS)
        processes.barrier("lfjax-workdir-checked")  # before process 0 writes config.json
        processes.check_shared_directory(workdir, "--workdir")
        if flow_dir.absolute() != (workdir / "flow").absolute():
            processes.check_shared_directory(flow_dir, "--flow_dir")
        loaded = stages.dataset.shared_dataset(config.env, generate_if_missing=True, log=log)
        if config.agent.batch_size > loaded.transitions.actions.shape[0]:
            raise cli.UserError(
                f"--batch_size={config.agent.batch_size} is larger than the dataset "
                f"({loaded.transitions.actions.shape[0]} transitions); pass a smaller --batch_size"
            )
        with hold_directory(workdir):
            # Checked again, alone now: two commands started together both passed the first check.
            processes.together(lambda: cli.check_workdir(workdir, config, options.resume), cli.USER_ERRORS)
            return train(config, loaded, workdir, flow_dir, options, stop)

    # SIGTERM / SIGINT: the stages end at their next boundary, saved (experiments/stopping.py).
    with stopping.on_signals() as stop:
        return cli.run_stages(
            lambda: run_stages(stop),
            after_lost_contact=f"Everything up to the last evaluation is saved in {workdir}; when "
            "every host is back, rerun the same command on each with --resume",
        )


def train(config, loaded, workdir: pathlib.Path, flow_dir: pathlib.Path, options: RunOptions,
          stop) -> int:
    """The flow and agent stages, the result files and the last line; the caller holds the
    workdir's lock. ``stop`` (experiments.stopping.GracefulStop) ends them early."""
    from experiments import cli, reporting, tracking
    from lfjax import processes, stages
    from lfjax.checkpoints import hold_directory, write_json
    from lfjax.pretraining import PretrainingStopped

    started = time.monotonic()
    # A resumed run adds its time to what the run before it recorded (results.json, rewritten
    # at every evaluation right after its checkpoint): the seconds spent on the work that
    # counts, over every segment; work lost to a kill after the last evaluation is not counted.
    before = previous_wall_seconds(workdir) if options.resume else 0.0
    log, progress = cli.job_output(options.progress)
    # Before anything is written: the checkpoints go on only from the data and the flow they
    # were trained from (a regenerated dataset, a flow replaced in a shared --flow_dir would mix
    # two runs in one result); on resume the run's own flow, checked, else None.
    pretrained = (stages.resume.check(workdir, loaded, flow_dir, config.uses_flow, log)
                  if options.resume else None)
    # A --flow_dir of its own choosing may hold another run's flow: reused when made alike,
    # never replaced (that run's agents act in its latent space); refused before config.json.
    own_flow = flow_dir.absolute() == (workdir / "flow").absolute()
    if pretrained is None and config.uses_flow and not own_flow:
        stages.flow.check_not_other(config, loaded, flow_dir)
    if processes.is_leader():
        write_json(workdir / "config.json", config.to_dict())
    if pretrained is None and config.uses_flow:
        try:
            pretrained = stages.flow.load_or_pretrain(config, loaded, flow_dir, resume=options.resume,
                                                      replace=own_flow, progress=progress, log=log,
                                                      should_stop=stop.requested)
        except PretrainingStopped as e:
            return cli.stopped(stop, f"after flow epoch {e.epochs_done} of {e.num_epochs}",
                               f"its progress is saved in {flow_dir / 'progress'}", "experiments.run")
    elif pretrained is None:
        pretrained = stages.flow.no_flow(loaded)
    base = {
        "config": {**config.to_dict(), "seeds": [config.seed + i for i in range(config.num_seeds)]},
        "preset": options.preset,
        "versions": reporting.versions(),
        "dataset": {
            **stages.dataset.dataset_identity(loaded),
            "ref_min_score": loaded.ref_min_score,
            "ref_max_score": loaded.ref_max_score,
        },
        "flow": {k: pretrained.info[k] for k in ("best_val_nll", "best_epoch", "history") if k in pretrained.info},
    }
    # Process 0 tracks the run (if asked for); opened before the agents train, so that a W&B
    # login problem shows early.
    tracker = tracking.open_tracker(
        log_dir=options.log_dir if processes.is_leader() else None,
        use_wandb=options.wandb and processes.is_leader(),
        workdir=workdir, config=base, wandb_project=options.wandb_project,
    )

    def report(results):
        # Wall seconds of the flow and agent stages (not the dataset's), as of this evaluation.
        results = {**results, "wall_seconds": before + time.monotonic() - started}
        if results["status"] == "interrupted":  # what stopped it, and how to go on
            results["interrupted"] = {"signal": stop.name,
                                      "resume_command": cli.resume_command("experiments.run")}
        reporting.write_outputs(workdir, results)
        tracker.report(results)

    # While the agents train, nobody replaces the flow they decode through (experiments.evaluate
    # loads it again later): runs that read a flow directory share its lock, a writer needs it alone.
    try:
        with hold_directory(flow_dir, shared=True) if config.uses_flow else contextlib.nullcontext():
            results = stages.agent.train_agent(
                config, loaded, pretrained, workdir,
                resume=options.resume, progress=progress, log=log, results_base=base, report=report,
                should_stop=stop.requested,
            )
    finally:
        tracker.close()
    if results["status"] == "interrupted":
        return cli.stopped(stop, f"at {results['updates']} of {config.num_updates} updates",
                           f"the checkpoint and results up to there are in {workdir}", "experiments.run")
    lines, status = reporting.final_lines(results, workdir)
    if status == 0:
        for line in lines:
            log(line)
    elif processes.is_leader():
        cli.fail(lines[0], status)  # every seed failed: no score, exit status 1
    return status


def previous_wall_seconds(workdir: pathlib.Path) -> float:
    """The wall seconds the run in ``workdir`` recorded so far (0 when it recorded none: killed
    before its first evaluation, or made before runs recorded them)."""
    from lfjax.checkpoints import CheckpointError, read_json

    try:
        return float(read_json(workdir / "results.json").get("wall_seconds") or 0.0)
    except (OSError, CheckpointError, AttributeError, TypeError, ValueError):
        return 0.0


if __name__ == "__main__":
    define_flags()
    flags.mark_flag_as_required("env")
    app.run(lambda argv: sys.exit(main(argv)))
