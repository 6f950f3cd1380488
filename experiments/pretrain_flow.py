"""Pretrain the conditional flow p(a|s) on an offline dataset, many seeds at once.

    python -m experiments.pretrain_flow --env=maze2d-umaze --num_seeds=3 --workdir=runs/umaze

Prints train and validation NLL per epoch, keeps each seed's lowest-validation-NLL
parameters, and saves them with the state normalization to ``<workdir>/flow``
(`lfjax.stages.flow.load_or_pretrain`, which `experiments.run` calls too). Every epoch is
checkpointed in ``<workdir>/flow/progress``: after a kill, the same command with --resume
continues from the last epoch and ends with the same flow; SIGTERM or SIGINT stops it after the
current epoch, saved (exit status 143 / 130; a second signal stops it at once). One process at a
time writes a flow directory (a second one stops with a line naming the first).
"""

import dataclasses
import pathlib
import sys

from absl import app, flags

from experiments import shared_flags

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("env", None, "Dataset name, e.g. maze2d-umaze (see lfjax.data registry).")
    flags.DEFINE_integer("num_seeds", 1, "Flows trained at once (vmapped).")
    flags.DEFINE_integer("seed", 0, "Base random seed.")
    shared_flags.define_preset()  # --preset: auto (by the devices JAX sees), paper or quick
    flags.DEFINE_string("workdir", None, "The flow goes to <workdir>/flow (default runs/<env>-flow).")
    flags.DEFINE_bool("resume", False, "Continue an unfinished pretraining in <workdir>/flow from "
                      "its last epoch.")
    shared_flags.define()  # --flow_epochs --flow_batch_size --flow_blocks --progress --distributed


def build_config(preset: str):
    """The RunConfig whose flow this command trains: the flow settings of ``preset`` (a
    PRESETS name) with the overrides, --num_seeds flows (one per seed, so that experiments.run
    --flow_per_seed reuses them). ValueError on anything invalid."""
    from lfjax.configs import PRESETS

    flow = dataclasses.replace(PRESETS[preset](FLAGS.env).flow, **shared_flags.flow_overrides())
    config = dataclasses.replace(
        PRESETS[preset](FLAGS.env), flow=flow, num_seeds=FLAGS.num_seeds, seed=FLAGS.seed,
        flow_per_seed=True,
    )
    config.validate()
    return config


def flow_made_with(flow_dir: pathlib.Path, config) -> bool:
    """Whether flow_dir holds a finished flow with config's flow settings (flow.json), so that
    auto keeps the preset it was made with on a machine with other devices."""
    from lfjax.checkpoints import CheckpointError, as_json, read_json

    try:
        saved = read_json(flow_dir / "flow.json")
    except (OSError, CheckpointError):
        return False
    return isinstance(saved, dict) and saved.get("flow_config") == as_json(config.flow.record())


def main(argv) -> int:
    from experiments import cli, stopping

    if (status := cli.start_cli(argv)) is not None:
        return status
    from lfjax import data, processes, stages
    from lfjax.checkpoints import check_free, hold_directory
    from lfjax.pretraining import PretrainingStopped

    try:
        data.get_env_spec(FLAGS.env)
        shared_flags.check_preset(FLAGS.preset)
        # Checked under any preset; auto is resolved after joining the job, below.
        build_config("paper" if FLAGS.preset == shared_flags.AUTO else FLAGS.preset)
    except ValueError as e:
        return cli.fail(str(e))
    workdir = pathlib.Path(FLAGS.workdir or f"runs/{FLAGS.env}-flow")
    flow_dir = workdir / "flow"
    # Only after the flags are known good: joining waits for every process of the job.
    try:
        cli.join_processes(FLAGS.distributed)
    except cli.UserError as e:
        return cli.fail(str(e))
    log, progress = cli.job_output(FLAGS.progress)
    preset = cli.choose_preset(
        FLAGS.preset, lambda name: f"the flow in {flow_dir} was made with it" if flow_made_with(flow_dir, build_config(name)) else None)
    log(preset.line)
    config = build_config(preset.name)

    def check_dirs():
        cli.check_writable(flow_dir, "--workdir")
        check_free(workdir)  # e.g. an experiments.run training there, on this very flow
        check_free(flow_dir)

    def run_stages(stop):
        processes.together(check_dirs, cli.USER_ERRORS)
        processes.check_shared_directory(flow_dir, "--workdir")
        loaded = stages.dataset.shared_dataset(FLAGS.env, generate_if_missing=False, log=log)
        # The workdir too, not only the flow: a run there decodes through that flow.
        with hold_directory(workdir):
            try:
                stages.flow.load_or_pretrain(config, loaded, flow_dir, resume=FLAGS.resume,
                                             progress=progress, log=log, should_stop=stop.requested)
            except PretrainingStopped as e:
                return cli.stopped(stop, f"after flow epoch {e.epochs_done} of {e.num_epochs}",
                                   f"its progress is saved in {flow_dir / 'progress'}",
                                   "experiments.pretrain_flow")
        return 0

    # SIGTERM / SIGINT: the pretraining ends after its current epoch, saved (experiments/stopping.py).
    with stopping.on_signals() as stop:
        return cli.run_stages(
            lambda: run_stages(stop), after_lost_contact="Rerun the same command on every host with "
            "--resume (a flow saved completely is reused, an unfinished one continues from its last epoch)"
        )


if __name__ == "__main__":
    define_flags()
    flags.mark_flag_as_required("env")
    app.run(lambda argv: sys.exit(main(argv)))
