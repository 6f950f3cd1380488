"""The whole CNF pipeline for many seeds at once:

    python -m experiments.run --env=maze2d-umaze --preset=quick

dataset (generated if missing) -> flow pretraining (or reuse) -> latent AWAC with
evaluation and checkpoints -> results.json, curve.csv, curve.png in --workdir.
--algo=awac and --algo=bc run the baselines (AWAC, behaviour cloning) in action space, no flow.
"""

import contextlib
import dataclasses
import pathlib
import sys

from absl import app, flags

from experiments import shared_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("env", None, "Dataset / environment name, e.g. maze2d-umaze.")
flags.DEFINE_string("preset", "paper", "paper: SPEC.md settings (hours on a CPU); quick: minutes on a CPU.")
flags.DEFINE_string("algo", "latent_awac", "latent_awac: the paper's method; awac: the same agent "
                    "in action space (no flow); bc: behaviour cloning in action space.")
flags.DEFINE_integer("num_seeds", None, "Seeds trained at once (paper and quick: 3).")
flags.DEFINE_integer("seed", None, "Base seed; seeds are seed, seed+1, ... (default 0).")
flags.DEFINE_string("workdir", None, "Output directory (default runs/<env>-<preset>).")
flags.DEFINE_string("flow_dir", None, "Pretrained flow to reuse or create (default <workdir>/flow).")
flags.DEFINE_bool("flow_per_seed", None, "Pretrain one flow per seed instead of one shared flow "
                  "(the official protocol shares one).")
flags.DEFINE_bool("resume", False, "Continue the run in --workdir from its last checkpoint (and "
                  "an unfinished flow pretraining from its last epoch).")
# Overrides of the main hyperparameters (None: the preset's value).
flags.DEFINE_integer("num_updates", None, "AWAC updates per seed.")
flags.DEFINE_integer("eval_every", None, "Updates between evaluations and checkpoints.")
flags.DEFINE_integer("eval_episodes", None, "Evaluation episodes per seed (every evaluation but the last).")
flags.DEFINE_integer("final_eval_episodes", None, "Evaluation episodes per seed at the last evaluation "
                     "(the final score; default 50).")
flags.DEFINE_integer("batch_size", None, "AWAC batch size.")
flags.DEFINE_float("awac_lambda", None, "AWAC temperature lambda.")
flags.DEFINE_float("tau", None, "Target-critic Polyak step.")
flags.DEFINE_float("actor_lr", None, "Actor learning rate.")
flags.DEFINE_float("critic_lr", None, "Critic learning rate.")
flags.DEFINE_multi_string("sweep", [], "A hyperparameter grid in the same program, repeatable: "
                          "--sweep=NAME=V1,V2,... over awac_lambda, tau, actor_lr, critic_lr, "
                          "gamma, weight_clip; every combination times --num_seeds seeds.")
shared_flags.define_tracking()  # --log_dir --wandb --wandb_project
shared_flags.define()  # --flow_epochs --flow_batch_size --flow_blocks --progress --distributed

AGENT_FLAGS = ("batch_size", "awac_lambda", "tau", "actor_lr", "critic_lr")
RUN_FLAGS = ("num_updates", "eval_every", "eval_episodes", "final_eval_episodes", "num_seeds",
             "seed", "flow_per_seed")
# Flags that only mean something with a flow, or with critics (refused otherwise).
FLOW_ONLY = ("flow_dir", "flow_per_seed", *shared_flags.FLOW_FLAGS)
CRITIC_ONLY = ("awac_lambda", "tau", "critic_lr")


def build_config():
    """RunConfig from --preset and the overrides; ValueError on anything invalid."""
    from lfjax.configs import PRESETS, SWEEPABLE, parse_sweep

    if FLAGS.preset not in PRESETS:
        raise ValueError(f"unknown --preset={FLAGS.preset!r}; choose one of: {', '.join(PRESETS)}")
    config = PRESETS[FLAGS.preset](FLAGS.env)
    agent = dataclasses.replace(
        config.agent, **{k: getattr(FLAGS, k) for k in AGENT_FLAGS if getattr(FLAGS, k) is not None}
    )
    flow = dataclasses.replace(config.flow, **shared_flags.flow_overrides())
    run = {k: getattr(FLAGS, k) for k in RUN_FLAGS if getattr(FLAGS, k) is not None}
    sweep = parse_sweep(FLAGS.sweep)
    both = [name for name, _ in sweep if name in SWEEPABLE and name in AGENT_FLAGS and FLAGS[name].present]
    if both:
        raise ValueError(f"--{both[0]} and --sweep={both[0]}=... both set {both[0]}; keep one")
    config = dataclasses.replace(config, agent=agent, flow=flow, algo=FLAGS.algo, sweep=sweep, **run)
    config.validate()
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


def main(argv) -> int:
    from experiments import cli, tracking

    if (status := cli.start_cli(argv)) is not None:
        return status
    from lfjax import data

    try:
        data.get_env_spec(FLAGS.env)
        config = build_config()
        tracking.check_installed(FLAGS.log_dir, FLAGS.wandb)
    except ValueError as e:  # UnknownEnvError is a ValueError
        return cli.fail(str(e))
    workdir = pathlib.Path(FLAGS.workdir or f"runs/{FLAGS.env}-{FLAGS.preset}")
    flow_dir = pathlib.Path(FLAGS.flow_dir) if FLAGS.flow_dir else workdir / "flow"
    # Only after the flags are known good: joining waits for every process of the job.
    try:
        cli.join_processes(FLAGS.distributed)
    except cli.UserError as e:
        return cli.fail(str(e))
    return run(config, workdir, flow_dir)


def run(config, workdir: pathlib.Path, flow_dir: pathlib.Path) -> int:
    """Every stage, in every process of the job; process 0 prints and writes the files.

    From its first write to its end the run holds --workdir's lock (process 0 for the job), so
    a second command on the same workdir stops with one line naming this one; before that it
    only checks, without writing anything, that nobody else holds it."""
    from experiments import cli, stopping
    from lfjax import processes, sharding, stages
    from lfjax.checkpoints import check_free, hold_directory

    log, _ = cli.job_output(FLAGS.progress)

    def run_stages(stop):
        sharding.seed_mesh(config.num_members)  # across hosts: a member count that does not split

        def check_dirs():
            cli.check_writable(workdir, "--workdir")
            cli.check_writable(flow_dir, "--flow_dir")
            check_free(workdir)  # another process writing there: one line naming it
            check_free(flow_dir)
            if FLAGS.log_dir and processes.is_leader():  # only process 0 writes there
                cli.check_writable(pathlib.Path(FLAGS.log_dir), "--log_dir")
            cli.check_workdir(workdir, config, FLAGS.resume)

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
            processes.together(lambda: cli.check_workdir(workdir, config, FLAGS.resume), cli.USER_ERRORS)
            return train(config, loaded, workdir, flow_dir, stop)

    # SIGTERM / SIGINT: the stages end at their next boundary, saved (experiments/stopping.py).
    with stopping.on_signals() as stop:
        return cli.run_stages(
            lambda: run_stages(stop),
            after_lost_contact=f"Everything up to the last evaluation is saved in {workdir}; when "
            "every host is back, rerun the same command on each with --resume",
        )


def train(config, loaded, workdir: pathlib.Path, flow_dir: pathlib.Path, stop) -> int:
    """The flow and agent stages, the result files and the last line; the caller holds the
    workdir's lock. ``stop`` (experiments.stopping.GracefulStop) ends them early."""
    from experiments import cli, reporting, tracking
    from lfjax import processes, stages
    from lfjax.checkpoints import hold_directory, write_json
    from lfjax.pretraining import PretrainingStopped

    log, progress = cli.job_output(FLAGS.progress)
    # Before anything is written: the checkpoints go on only from the data and the flow they
    # were trained from (a regenerated dataset, a flow replaced in a shared --flow_dir would mix
    # two runs in one result); on resume the run's own flow, checked, else None.
    pretrained = stages.resume.check(workdir, loaded, flow_dir, config.uses_flow, log) if FLAGS.resume else None
    if processes.is_leader():
        write_json(workdir / "config.json", config.to_dict())
    if pretrained is None and config.uses_flow:
        try:
            pretrained = stages.flow.load_or_pretrain(config, loaded, flow_dir, resume=FLAGS.resume,
                                                      progress=progress, log=log, should_stop=stop.requested)
        except PretrainingStopped as e:
            return cli.stopped(stop, f"after flow epoch {e.epochs_done} of {e.num_epochs}",
                               f"its progress is saved in {flow_dir / 'progress'}", "experiments.run")
    elif pretrained is None:
        pretrained = stages.flow.no_flow(loaded)
    base = {
        "config": {**config.to_dict(), "seeds": [config.seed + i for i in range(config.num_seeds)]},
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
        log_dir=FLAGS.log_dir if processes.is_leader() else None,
        use_wandb=FLAGS.wandb and processes.is_leader(),
        workdir=workdir, config=base, wandb_project=FLAGS.wandb_project,
    )

    def report(results):
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
                resume=FLAGS.resume, progress=progress, log=log, results_base=base, report=report,
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


if __name__ == "__main__":
    flags.mark_flag_as_required("env")
    app.run(lambda argv: sys.exit(main(argv)))
