"""Evaluate the agents a run saved, again: more episodes, an earlier checkpoint, or the
policy's mean instead of a sample.

    python -m experiments.evaluate --workdir=runs/umaze --episodes=100 [--step=N] [--deterministic]

Reads <workdir>/config.json, the flow (<workdir>/flow or --flow_dir) and the orbax checkpoint
of --step (default: the latest), rolls out --episodes episodes per seed in the real
environment, prints the normalized score per seed and mean ± std over seeds, and writes every
episode's return to <workdir>/evaluations/step-<N>-<E>ep-<sample|mean>-seed<S>.json.
With the --episodes and --eval_seed of one of the run's own evaluations (results.json records
each one's eval_seed), it reproduces that evaluation's scores.

It may run while the run still trains (it reads committed checkpoints only, and takes no lock):
it then says so, and which checkpoint it evaluates. Seeds the run marked failed (non-finite)
are not rolled out; they are reported as failed and the mean ± std is over the others.
"""

import pathlib
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "The experiments.run directory to evaluate.")
flags.DEFINE_string("flow_dir", None, "The run's flow, when it was not <workdir>/flow.")
flags.DEFINE_integer("episodes", 100, "Episodes per seed.")
flags.DEFINE_integer("step", None, "Checkpoint (number of updates) to evaluate; default: the latest.")
flags.DEFINE_bool("deterministic", False, "Act with the actor's mean latent, tanh(mean), instead "
                  "of a sample (the paper and the run's own evaluations sample).")
flags.DEFINE_integer("eval_seed", 0, "Episode copy i is reset with eval_seed + i; the policy's "
                     "noise comes from PRNGKey(eval_seed).")


def main(argv) -> int:
    from experiments import cli

    if (status := cli.start_cli(argv)) is not None:
        return status
    if FLAGS.episodes < 1:
        return cli.fail(f"--episodes must be positive, got {FLAGS.episodes}")
    if FLAGS.step is not None and FLAGS.step < 1:
        return cli.fail(f"--step must be positive, got {FLAGS.step}")
    workdir = pathlib.Path(FLAGS.workdir)
    flow_dir = pathlib.Path(FLAGS.flow_dir) if FLAGS.flow_dir else workdir / "flow"
    return cli.run_stages(lambda: evaluate_run(workdir, flow_dir), after_lost_contact="",
                          after_disk_full="free space and rerun")


def evaluate_run(workdir: pathlib.Path, flow_dir: pathlib.Path) -> int:
    import numpy as np

    from experiments import cli, reporting
    from lfjax import data, evaluation
    from lfjax.checkpoints import (
        describe_holder,
        load_pretrained_flow,
        lock_holder,
        read_json,
        restore_run_record,
        run_checkpoints,
        write_json,
    )
    from lfjax.configs import RunConfig
    from lfjax import agent, stages
    from lfjax.stages.agent import Members, evaluate_agents, load_agents

    if not (workdir / "config.json").is_file() or not (workdir / "results.json").is_file():
        raise cli.UserError(
            f"{workdir} holds no experiments.run results (config.json and results.json); "
            "pass the --workdir of a run"
        )
    config = RunConfig.from_dict(read_json(workdir / "config.json"))
    spec = data.get_env_spec(config.env)
    results = read_json(workdir / "results.json")
    refs = results["dataset"]
    if config.uses_flow:
        pretrained = load_pretrained_flow(flow_dir)
        check_flow(workdir, flow_dir, pretrained)
    else:  # the baselines act in action space: their "flow" is the identity, with the data's stats
        loaded = stages.dataset.prepare_dataset(config.env, generate_if_missing=False, log=print)
        pretrained = stages.flow.no_flow(loaded)
    if pretrained.num_seeds not in (1, config.num_seeds):
        raise cli.UserError(
            f"the flow in {flow_dir} has {pretrained.num_seeds} seeds, the run {config.num_seeds}: "
            "it is not this run's flow; pass the run's --flow_dir"
        )
    writer = lock_holder(workdir)  # read before the checkpoint: "still writing" covers it
    step, states = load_agents(config, pretrained, spec.obs_dim, workdir, FLAGS.step)
    if writer is not None:
        print(f"note: the run in {workdir} is still training ({describe_holder(writer)}): "
              f"evaluating its checkpoint {step}, the latest committed one when this started")
    elif results.get("status") != "finished" and FLAGS.step is None:
        print(f"note: the run in {workdir} stopped at {results.get('updates')} of "
              f"{config.num_updates} updates without finishing (status {results.get('status')!r}): "
              f"evaluating its checkpoint {step}")
    members = Members.of(config)
    seeds = members.seeds.tolist()
    failed = np.array(restore_run_record(run_checkpoints(workdir), workdir, step)["failed"], bool)
    if failed.all():
        return cli.fail(f"every member of the run in {workdir} had failed (non-finite) by checkpoint "
                        f"{step}: there is no policy to evaluate", status=1)
    kept = np.flatnonzero(~failed)
    returns = evaluate_agents(
        config, spec, pretrained, agent.acting_params(states), num_episodes=FLAGS.episodes,
        seed=FLAGS.eval_seed, deterministic=FLAGS.deterministic, member_indices=kept,
    )  # [kept, episodes]: a failed member is never rolled out
    normalized = evaluation.normalized_score(returns, refs["ref_min_score"], refs["ref_max_score"])
    scores = np.full(config.num_members, np.nan)
    scores[kept] = normalized.mean(axis=1)
    mode = "mean" if FLAGS.deterministic else "sample"
    # Per member: its row of ``values`` [kept, episodes], or None for a failed member.
    by_member = lambda values: [dict(zip(kept.tolist(), values.tolist())).get(i)
                                for i in range(config.num_members)]
    record = {
        "workdir": str(workdir.absolute()),
        "env": config.env,
        "step": step,
        "run_still_training": writer is not None,
        "episodes": FLAGS.episodes,
        "actions": mode,
        "eval_seed": FLAGS.eval_seed,
        "seeds": seeds,
        "members": [members.name(m) for m in range(config.num_members)],
        "failed_seeds": [seeds[i] for i in np.flatnonzero(failed)],
        "scores": [None if failed[i] else float(scores[i]) for i in range(config.num_members)],
        "mean": float(scores[kept].mean()),
        "std": float(scores[kept].std()),
        "returns": by_member(returns),
        "normalized": by_member(normalized),
        "versions": reporting.versions(),
    }
    out = workdir / "evaluations" / f"step-{step}-{FLAGS.episodes}ep-{mode}-seed{FLAGS.eval_seed}.json"
    write_json(out, record)
    stderr = np.std(normalized, axis=1) / np.sqrt(FLAGS.episodes)
    per_member = ", ".join(f"{members.name(i)}: failed" if failed[i] else
                           f"{members.name(i)}: {scores[i]:.1f}" for i in range(config.num_members))
    what = "members" if members.num_configs > 1 else "seeds"
    over = f"{len(kept)} of {config.num_members} {what}" if failed.any() else what
    print(
        f"{config.env} after {step} updates, {FLAGS.episodes} episodes per seed ({mode} actions): "
        f"normalized score {scores[kept].mean():.1f} ± {scores[kept].std():.1f} over {over} "
        f"({per_member}; largest standard error of a seed's mean {stderr.max():.1f}); written to {out}"
    )
    return 0


def check_flow(workdir: pathlib.Path, flow_dir: pathlib.Path, pretrained) -> None:
    """UserError unless ``pretrained`` is the flow the run's checkpoints recorded (runs from
    before the record are not checked): an actor decoded through another flow acts at random."""
    from experiments import cli
    from lfjax.stages.resume import flow_sha256, recorded_inputs

    expected = (recorded_inputs(workdir) or {}).get("flow_sha256")
    now = flow_sha256(pretrained)
    if expected is not None and now != expected:
        made = ", ".join(f"{k} {pretrained.info[k]}" for k in ("seed", "num_epochs") if k in pretrained.info)
        raise cli.UserError(
            f"the flow in {flow_dir} ({made}, sha256 {now[:12]}) is not the one the run in {workdir} "
            f"trained through (sha256 {expected[:12]}): its actors act in that flow's latent space, "
            "so their scores through another would mean nothing. Pass the --flow_dir that holds "
            "the run's flow"
        )


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    app.run(lambda argv: sys.exit(main(argv)))
