"""Evaluate the agents a run saved, again: more episodes, an earlier checkpoint, or the
policy's mean instead of a sample.

    python -m experiments.evaluate --workdir=runs/umaze --episodes=100 [--step=N] [--deterministic]

Reads <workdir>/config.json, the flow (<workdir>/flow or --flow_dir) and the orbax checkpoint
of --step (default: the latest), rolls out --episodes episodes per seed in the real
environment, prints the normalized score per seed and mean ± std over seeds, and writes every
episode's return to <workdir>/evaluations/step-<N>-<E>ep-<sample|mean>-seed<S>.json.
With the --episodes and --eval_seed of one of the run's own evaluations (results.json records
each one's eval_seed), it reproduces that evaluation's scores.
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
    return cli.run_stages(lambda: evaluate_run(workdir, flow_dir), after_lost_contact="")


def evaluate_run(workdir: pathlib.Path, flow_dir: pathlib.Path) -> int:
    import numpy as np

    from experiments import cli, reporting
    from lfjax import data, evaluation
    from lfjax.checkpoints import load_pretrained_flow, read_json, write_json
    from lfjax.configs import RunConfig
    from lfjax import stages
    from lfjax.stages.agent import Members, evaluate_agents, load_agents

    if not (workdir / "config.json").is_file() or not (workdir / "results.json").is_file():
        raise cli.UserError(
            f"{workdir} holds no experiments.run results (config.json and results.json); "
            "pass the --workdir of a run"
        )
    config = RunConfig.from_dict(read_json(workdir / "config.json"))
    spec = data.get_env_spec(config.env)
    refs = read_json(workdir / "results.json")["dataset"]
    if config.uses_flow:
        pretrained = load_pretrained_flow(flow_dir)
    else:  # the baselines act in action space: their "flow" is the identity, with the data's stats
        loaded = stages.dataset.prepare_dataset(config.env, generate_if_missing=False, log=print)
        pretrained = stages.flow.no_flow(loaded)
    if pretrained.num_seeds not in (1, config.num_seeds):
        raise cli.UserError(
            f"the flow in {flow_dir} has {pretrained.num_seeds} seeds, the run {config.num_seeds}: "
            "it is not this run's flow; pass the run's --flow_dir"
        )
    step, states = load_agents(config, pretrained, spec.obs_dim, workdir, FLAGS.step)
    returns = evaluate_agents(
        config, spec, pretrained, states.actor_params, num_episodes=FLAGS.episodes,
        seed=FLAGS.eval_seed, deterministic=FLAGS.deterministic,
    )
    normalized = evaluation.normalized_score(returns, refs["ref_min_score"], refs["ref_max_score"])
    scores = normalized.mean(axis=1)
    mode = "mean" if FLAGS.deterministic else "sample"
    members = Members.of(config)
    seeds = members.seeds.tolist()
    record = {
        "workdir": str(workdir.absolute()),
        "env": config.env,
        "step": step,
        "episodes": FLAGS.episodes,
        "actions": mode,
        "eval_seed": FLAGS.eval_seed,
        "seeds": seeds,
        "members": [members.name(m) for m in range(config.num_members)],
        "scores": scores.tolist(),
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "returns": returns.tolist(),
        "normalized": normalized.tolist(),
        "versions": reporting.versions(),
    }
    out = workdir / "evaluations" / f"step-{step}-{FLAGS.episodes}ep-{mode}-seed{FLAGS.eval_seed}.json"
    write_json(out, record)
    stderr = np.std(normalized, axis=1) / np.sqrt(FLAGS.episodes)
    per_member = ", ".join(f"{members.name(m)}: {v:.1f}" for m, v in enumerate(scores))
    print(
        f"{config.env} after {step} updates, {FLAGS.episodes} episodes per seed ({mode} actions): "
        f"normalized score {scores.mean():.1f} ± {scores.std():.1f} over "
        f"{'members' if members.num_configs > 1 else 'seeds'} ({per_member}; "
        f"largest standard error of a seed's mean {stderr.max():.1f}); written to {out}"
    )
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    app.run(lambda argv: sys.exit(main(argv)))
