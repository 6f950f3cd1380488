"""The files a run leaves for people: results.json, curve.csv and curve.png (and sweep.csv for a
grid), each written atomically (or replaced whole) after every evaluation, by process 0 only,
and the run's last lines. A full disk is `lfjax.checkpoints.DiskFullError` naming the file (the
old one intact). A failed seed has no score in any of them (an empty cell, a gap):
each names the failed seeds, and every mean ± std is over the seeds that finished."""

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
    # None (a failed seed; every seed for mean and std) is an empty cell.
    rows = [[p["updates"], p["mean"], p["std"], *p["scores"],
             " ".join(str(s) for s in p.get("failed_seeds", []))] for p in results["curve"]]
    _write_csv(workdir / "curve.csv", ["updates", "mean", "std", *names, "failed_seeds"], rows)
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


def plot_curves(path: pathlib.Path, results: dict[str, Any]) -> None:
    """Normalized score vs updates (mean ± std over seeds), and the flow's validation NLL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_score, ax_nll) = plt.subplots(1, 2, figsize=(11, 4))
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
            # None (every seed failed by then) -> NaN: a gap in the line.
            mean = np.array([points[c]["mean"] for points in per_config], float)
            std = np.array([points[c]["std"] for points in per_config], float)
            ax_score.plot(x, mean, label=label)
            ax_score.fill_between(x, mean - std, mean + std, alpha=0.15 if len(labels) > 1 else 0.25)
    for name, value in results.get("baselines", {}).items():
        ax_score.axhline(value, linestyle="--", linewidth=1, color="gray" if "random" in name else "black", label=name)
    ax_score.set_xlabel("updates")
    ax_score.set_ylabel("normalized score")
    ax_score.set_title(results["config"]["env"])
    ax_score.legend(loc="best", fontsize=8)
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
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    _replace(path, png.getvalue())

