"""The files a run leaves for people: results.json, curve.csv and curve.png (and sweep.csv for a
grid), each written atomically (or replaced whole) after every evaluation, by process 0 only,
and the run's last lines. A full disk is `lfjax.checkpoints.DiskFullError` naming the file (the
old one intact). A failed seed has no score in any of them (an empty cell, a gap):
each names the failed seeds, and every mean ± std is over the seeds that finished.

And the files experiments.table makes from many runs' results.json: table.md, table.csv and
table.png (write_table)."""

import csv
import io
import pathlib
from typing import Any

import jax
import numpy as np

from lfjax import processes
from lfjax.checkpoints import write_json, writing
from lfjax.stages.agent import FLOW_BC
from lfjax.provenance import RUN_PACKAGES, package_versions


def versions() -> dict[str, str]:
    """The package versions and the devices a result was computed with."""
    out = package_versions(*RUN_PACKAGES)
    out["backend"] = jax.default_backend()
    out["devices"] = str(jax.devices())
    out["processes"] = str(jax.process_count())
    return out


def seeds_phrase(results: dict[str, Any]) -> str:
    """'3 seeds', or '2 of 3 seeds; seed 4 failed' when some failed (a grid: members)."""
    num = len(results["members"]) if "members" in results else len(results["config"]["seeds"])
    what = "members" if len(results.get("summary", [])) > 1 else "seeds"
    failed = results["final"]["failed_seeds"]
    if not failed:
        return f"{num} {what}"
    names = f"seed{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))}"
    return f"{num - len(failed)} of {num} {what}; {names} failed"


def final_lines(results: dict[str, Any], workdir: pathlib.Path) -> tuple[list[str], int]:
    """(what experiments.run prints at the end, its exit status): the score over the seeds that
    finished with the failed ones named, or a grid's ranking (status 0); or that every seed
    failed (status 1)."""
    baselines = ", ".join(
        f"{'flow BC' if name == FLOW_BC else name.split()[0]} {value:.1f}"
        for name, value in results["baselines"].items()
    )
    final, config = results["final"], results["config"]
    what = f"{config['env']} ({config['algo']})"
    failures = "; ".join(
        f"seed {f['seed']} went non-finite within updates {f['within_updates'][0]}-{f['within_updates'][1]}"
        if f.get("within_updates") else f"seed {f['seed']} went non-finite"
        for f in final.get("failures", [])
    )
    if final["mean"] is None:
        return [f"{what}: every seed failed ({failures}); no score. The curve up to the failures "
                f"is in {workdir}; try other seeds, or a smaller --actor_lr / --critic_lr"], 1
    note = f" [{failures}]" if failures else ""
    if len(results.get("summary", [])) <= 1:
        return [f"{what}: normalized score {final['mean']:.1f} ± {final['std']:.1f} over "
                f"{seeds_phrase(results)} after {results['updates']} updates ({baselines})"
                f"{note}; results in {workdir}"], 0
    lines = []
    for rank, entry in enumerate(results["summary"]):
        where = " ".join(f"{k}={v:g}" for k, v in entry["config"].items())
        score = "failed" if entry["mean"] is None else f"{entry['mean']:.1f} ± {entry['std']:.1f}"
        lines.append(f"  {rank + 1:>2}. {where}: {score}")
    best = " ".join(f"{k}={v:g}" for k, v in results["best"].items())
    lines.append(f"{what}: {len(results['summary'])} configurations x {len(config['seeds'])} seeds "
                 f"({seeds_phrase(results)}) after {results['updates']} updates; best {best} "
                 f"({baselines}){note}; results in {workdir}")
    return lines, 0


def write_outputs(workdir: pathlib.Path, results: dict[str, Any]) -> None:
    """results.json, curve.csv and curve.png, and for a grid sweep.csv; each written atomically
    or replaced whole. In a multi-process job only process 0 writes them."""
    if not processes.is_leader():
        return
    write_json(workdir / "results.json", results)
    members = results.get("members", [])
    grid = len(results.get("summary", [])) > 1
    names = [_member_column(m, grid) for m in members]
    # None (a failed seed; every seed for mean and std) is an empty cell. Beside the scores:
    # the critics' mean Q against the data's Monte-Carlo return, and per member its mean Q and
    # the share of its episodes that reached a reward (`lfjax.stages.agent` diagnostics).
    mc_return = results.get("data", {}).get("mc_return_mean")
    per_member = ("q_mean", "reached", "q_start", "return_start")

    def member_values(point, key):
        values = point.get("diagnostics", {}).get(key)
        return values if values is not None else [None] * len(names)

    rows = [[p["updates"], p["mean"], p["std"], *p["scores"],
             " ".join(str(s) for s in p.get("failed_seeds", [])), p.get("q_mean"), mc_return,
             *[v for key in per_member for v in member_values(p, key)]]
            for p in results["curve"]]
    header = ["updates", "mean", "std", *names, "failed_seeds", "q_mean", "data_mc_return",
              *[f"{key}_{name}" for key in per_member for name in names]]
    _write_csv(workdir / "curve.csv", header, rows)
    if grid:
        swept = list(results["summary"][0]["config"])
        long_rows = [
            [p["updates"], i, *[m["config"][k] for k in swept], m["seed"], p["scores"][i], m["failed"]]
            for p in results["curve"] for i, m in enumerate(members)
        ]
        _write_csv(workdir / "sweep.csv", ["updates", "member", *swept, "seed", "score", "failed"], long_rows)
    plot_curves(workdir / "curve.png", results)


def _member_column(member: dict, grid: bool) -> str:
    where = "_".join(f"{k}={v:g}" for k, v in member["config"].items()) if grid else ""
    return f"{where}_seed_{member['seed']}" if where else f"seed_{member['seed']}"


def _write_csv(path: pathlib.Path, header: list[str], rows: list[list]) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    _replace(path, text.getvalue().encode())


def _replace(path: pathlib.Path, content: bytes) -> None:
    """Writes content beside path, then renames it over path (a reader sees the old file or
    the new one); a full disk is DiskFullError, the old file intact."""
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path, len(content)):
        try:
            tmp.write_bytes(content)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)


def _plot_q(ax, results: dict[str, Any]) -> None:
    """Per configuration (a grid) or per seed, the critics' mean Q over each chunk, and the
    data's mean discounted Monte-Carlo return at the agent's gamma (dashed): Q far above it
    while the scores fall is overestimation."""
    curve = [p for p in results["curve"] if p.get("diagnostics", {}).get("q_mean")]
    if curve:
        x = np.array([p["updates"] for p in curve])
        q = np.array([[np.nan if v is None else v for v in p["diagnostics"]["q_mean"]]
                      for p in curve], float)  # [points, M]
        members = results.get("members", [])
        grid = len(results.get("summary", [])) > 1
        num_seeds = len(results["config"]["seeds"])
        if grid:
            for c in range(q.shape[1] // num_seeds):
                label = " ".join(f"{k}={v:g}" for k, v in members[c * num_seeds]["config"].items())
                ax.plot(x, np.nanmean(q[:, c * num_seeds:(c + 1) * num_seeds], axis=1), label=label)
        else:
            for m in range(q.shape[1]):
                ax.plot(x, q[:, m], linewidth=1, label=f"seed {members[m]['seed']}" if members else None)
    mc_return = results.get("data", {}).get("mc_return_mean")
    if mc_return is not None:
        ax.axhline(mc_return, linestyle="--", color="black", linewidth=1,
                   label=f"data's MC return ({mc_return:.1f})")
    # At the evaluation episodes' first steps: what the critics promise against what the
    # policy then collected (mean over the members still going).
    starts = [p for p in results["curve"] if p.get("diagnostics", {}).get("q_start")]
    if starts:
        x = [p["updates"] for p in starts]
        mean = lambda values: np.nanmean(np.array([np.nan if v is None else v for v in values], float))
        ax.plot(x, [mean(p["diagnostics"]["q_start"]) for p in starts], color="black",
                marker="o", linewidth=1.5, label="Q at episode starts")
        ax.plot(x, [mean(p["diagnostics"]["return_start"]) for p in starts], color="black",
                marker="x", linestyle=":", linewidth=1.5, label="return collected from there")
    ax.set_xlabel("updates")
    ax.set_ylabel("mean Q(s, a) over data batches")
    ax.set_title("critics")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=7)


def plot_curves(path: pathlib.Path, results: dict[str, Any]) -> None:
    """Normalized score vs updates (mean ± std over seeds), the critics' mean Q against the
    data's discounted Monte-Carlo return, and the flow's validation NLL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_score, ax_q, ax_nll) = plt.subplots(1, 3, figsize=(16, 4))
    curve = results["curve"]
    if curve:
        x = np.array([p["updates"] for p in curve])
        algo = results["config"].get("algo", "latent_awac").replace("_", " ")
        num_seeds = len(results["config"]["seeds"])
        # One curve per configuration (a grid), mean ± std over its seeds.
        per_config = [[p] for p in curve] if "configs" not in curve[0] else [p["configs"] for p in curve]
        # The grid's configurations in member order (each member lists its own).
        grid = [m["config"] for m in results.get("members", [])[::num_seeds]] or [{}]
        labels = ([" ".join(f"{k}={v:g}" for k, v in c.items()) for c in grid]
                  if len(grid) > 1 else [f"{algo} ({num_seeds} seeds)"])
        if len(labels) == 1:
            labels = [f"{algo} ({seeds_phrase(results)})"]
        for c, label in enumerate(labels):
            _score_band(ax_score, x, [points[c] for points in per_config], label,
                        alpha=0.15 if len(labels) > 1 else 0.25)
    for name, value in results.get("baselines", {}).items():
        ax_score.axhline(value, linestyle="--", linewidth=1, color="gray" if "random" in name else "black", label=name)
    ax_score.set_xlabel("updates")
    ax_score.set_ylabel("normalized score")
    ax_score.set_title(results["config"]["env"])
    ax_score.legend(loc="best", fontsize=8)
    _plot_q(ax_q, results)
    history = results.get("flow", {}).get("history", [])
    if history:
        epochs = [h["epoch"] for h in history]
        val = np.array([h["val_nll"] for h in history])
        train = np.array([h["train_nll"] for h in history])
        ax_nll.plot(epochs, val.mean(1), marker="o", label="validation")
        ax_nll.fill_between(epochs, val.min(1), val.max(1), alpha=0.25)
        ax_nll.plot(epochs, train.mean(1), marker=".", linestyle="--", label="train")
        ax_nll.legend(fontsize=8)
    ax_nll.set_xlabel("flow epoch")
    ax_nll.set_ylabel("NLL (nats per action)")
    ax_nll.set_title("flow pretraining")
    _save_figure(fig, path)


def _score_band(ax, x: np.ndarray, points: list[dict], label: str, alpha: float) -> None:
    """The mean of points [len(x)] as a line, mean ± std as a band; a None (every seed failed
    by then) is NaN: a gap in the line."""
    mean = np.array([p["mean"] for p in points], float)
    std = np.array([p["std"] for p in points], float)
    ax.plot(x, mean, label=label)
    ax.fill_between(x, mean - std, mean + std, alpha=alpha)


def _save_figure(fig, path: pathlib.Path) -> None:
    """Saves fig as path's PNG whole (written beside it, then renamed) and closes it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    _replace(path, png.getvalue())



# experiments.table: one cell per env x algorithm, each a run's results.json.

def format_seconds(seconds: float | None) -> str:
    """'45 s', '7 min 31 s', '2 h 05 min'; None (a run that recorded no time): 'time not recorded'."""
    if seconds is None:
        return "time not recorded"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _stand_in(results: dict[str, Any]) -> bool:
    """Whether a run trained on a generated locomotion stand-in (not D4RL data)."""
    return str(results.get("dataset", {}).get("minari_id", "")).startswith("lfjax-generated/")


def _cell_text(results: dict[str, Any]) -> str:
    """A markdown table cell: **mean ± std**, each seed's score, the wall time."""
    final = results["final"]
    if final["mean"] is None:
        score = "every seed failed"
    else:
        score = f"**{final['mean']:.1f} ± {final['std']:.1f}**"
    seeds = ", ".join("failed" if v is None else f"{v:.1f}" for v in final["scores"])
    parts = [score, seeds, format_seconds(results.get("wall_seconds"))]
    if _stand_in(results):
        parts.append("stand-in data, not D4RL")
    return "<br>".join(parts)


def _facts(results: dict[str, Any]) -> dict[str, str]:
    """What a cell was run with, as the table's header or env column says it."""
    config = results["config"]
    preset = results.get("preset", {}).get("name", "not recorded")
    return {
        "preset": f"preset {preset}",
        "seeds": f"seed{'s' if len(config['seeds']) > 1 else ''} {', '.join(map(str, config['seeds']))}",
        "updates": f"{config['num_updates']:,} updates",
        "episodes": f"final evaluation {config['final_eval_episodes']} episodes per seed",
    }


def write_table(directory: pathlib.Path, cells: list[dict[str, Any]], *, envs: list[str],
                algos: list[str], command: str, date: str) -> list[str]:
    """table.md, table.csv and table.png in directory from the cells [len(envs) x len(algos)],
    each {"env", "algo", "workdir", "results" (its results.json)}; returns the markdown table's
    lines. Each file is written whole (beside its place, then renamed), by process 0 only.

    table.md: a row per env, a column per algorithm (mean ± std over the seeds of the final
    normalized score, each seed's score, the wall time), the flow-BC baseline; what every cell
    shares (preset, seeds, updates, final-evaluation episodes) in a line above, what differs
    between envs in their row. table.csv: a row per cell. table.png: a panel per env, a curve
    per algorithm (mean ± std band vs updates)."""
    if not processes.is_leader():
        return []
    by = {(c["env"], c["algo"]): c for c in cells}
    facts = {c["env"]: _facts(c["results"]) for c in cells}  # the envs' cells share their config's facts
    shared = {k: v for k, v in facts[envs[0]].items() if all(facts[e][k] == v for e in envs)}
    flow_bc = {e: by[(e, "latent_awac")]["results"]["baselines"].get(FLOW_BC)
               for e in envs if (e, "latent_awac") in by}
    header = ["env", *algos, *(["flow BC"] if flow_bc else [])]
    rows = []
    for env in envs:
        differs = [v for k, v in facts[env].items() if k not in shared]
        row = ["<br>".join([env, *differs]), *(_cell_text(by[(env, a)]["results"]) for a in algos)]
        if flow_bc:
            row.append("–" if flow_bc.get(env) is None else f"{flow_bc[env]:.1f}")
        rows.append(row)
    table = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}",
             *(f"| {' | '.join(row)} |" for row in rows)]
    text = [
        "# Normalized scores",
        "",
        _capitalized(f"{'; '.join(shared.values())}; written {date} by `{command}`."),
        "",
        *table,
        "",
        "Each cell: the normalized score at the last evaluation (0: the random policy, 100: the "
        "reference expert), mean ± std over the seeds that finished, then each seed's score, then "
        "the cell's wall time (flow pretraining and agent training with its evaluations, as its "
        "run recorded it; not the dataset's generation or loading)."
        + (" flow BC: the pretrained flow's own sampling policy (z ~ U, no actor), from the "
           "latent_awac cell." if flow_bc else ""),
    ]
    if any(e.startswith("maze2d") for e in envs):
        text += ["", "maze2d: the reference returns that define 0 and 100 are measured on our "
                 "gymnasium-robotics PointMaze environments (lfjax/data/registry.py), not D4RL's, "
                 "so these scores are not comparable with D4RL-normalized maze2d numbers."]
    text += ["", f"Each cell's run: `{directory}/<env>-<algo>` (results.json, curve.csv, curve.png)."]
    tmp = directory / ".table.md.tmp"
    tmp.write_text("\n".join(text) + "\n")
    tmp.replace(directory / "table.md")

    seeds = sorted({s for c in cells for s in c["results"]["config"]["seeds"]})
    csv_rows = []
    for c in cells:
        r, config, final = c["results"], c["results"]["config"], c["results"]["final"]
        per_seed = dict(zip(config["seeds"], final["scores"]))
        csv_rows.append([
            c["env"], c["algo"], r.get("preset", {}).get("name"), r.get("preset", {}).get("chosen"),
            " ".join(map(str, config["seeds"])), config["num_updates"], config["final_eval_episodes"],
            r["status"], final["mean"], final["std"], *(per_seed.get(s) for s in seeds),
            " ".join(map(str, final["failed_seeds"])), r["baselines"].get(FLOW_BC),
            r.get("wall_seconds"), r["dataset"]["minari_id"], c["workdir"],
        ])
    _write_csv(directory / "table.csv", [
        "env", "algo", "preset", "preset_chosen", "seeds", "updates", "final_eval_episodes",
        "status", "mean", "std", *(f"seed_{s}" for s in seeds), "failed_seeds", "flow_bc",
        "wall_seconds", "dataset", "workdir"], csv_rows)
    plot_table(directory / "table.png", cells, envs, algos)
    return table


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def plot_table(path: pathlib.Path, cells: list[dict[str, Any]], envs: list[str], algos: list[str]) -> None:
    """A panel per env: normalized score vs updates, a curve per algorithm (mean ± std over its
    seeds), the random policy and the flow-BC baseline as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {(c["env"], c["algo"]): c["results"] for c in cells}
    cols = min(3, len(envs))
    rows = -(-len(envs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(envs):]:
        ax.set_visible(False)
    for ax, env in zip(axes.flat, envs):
        for algo in algos:
            results = by[(env, algo)]
            curve = results["curve"]
            if curve:
                x = np.array([p["updates"] for p in curve])
                _score_band(ax, x, curve, f"{algo} ({seeds_phrase(results)})", alpha=0.2)
        ax.axhline(0.0, linestyle="--", linewidth=1, color="gray", label="random policy")
        bc = by[(env, "latent_awac")]["baselines"].get(FLOW_BC) if (env, "latent_awac") in by else None
        if bc is not None:
            ax.axhline(bc, linestyle="--", linewidth=1, color="black", label="flow BC")
        ax.set_title(env)
        ax.set_xlabel("updates")
        ax.set_ylabel("normalized score")
        ax.legend(loc="best", fontsize=7)
    _save_figure(fig, path)
