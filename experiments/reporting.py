"""The files a run leaves for people: results.json, curve.csv and curve.png, each written
atomically (or replaced whole) after every evaluation, by process 0 only."""

import csv
import pathlib
from typing import Any

import jax
import numpy as np

from lfjax import processes
from lfjax.checkpoints import write_json
from lfjax.configs import RunConfig
from lfjax.stages.agent import FLOW_BC
from lfjax.provenance import RUN_PACKAGES, package_versions


def versions() -> dict[str, str]:
    """The package versions and the devices a result was computed with."""
    out = package_versions(*RUN_PACKAGES)
    out["backend"] = jax.default_backend()
    out["devices"] = str(jax.devices())
    out["processes"] = str(jax.process_count())
    return out


def final_lines(config: RunConfig, results: dict[str, Any], workdir: pathlib.Path) -> list[str]:
    """What experiments.run prints at the end: the score over seeds, or a grid's ranking."""
    baselines = ", ".join(
        f"{'flow BC' if name == FLOW_BC else name.split()[0]} {value:.1f}"
        for name, value in results["baselines"].items()
    )
    final = results["final"]
    if len(results["summary"]) == 1:
        return [f"{config.env} ({config.algo}): normalized score {final['mean']:.1f} ± "
                f"{final['std']:.1f} over {config.num_seeds} seeds after {results['updates']} "
                f"updates ({baselines}); results in {workdir}"]
    lines = []
    for rank, entry in enumerate(results["summary"]):
        where = " ".join(f"{k}={v:g}" for k, v in entry["config"].items())
        lines.append(f"  {rank + 1:>2}. {where}: {entry['mean']:.1f} ± {entry['std']:.1f}")
    best = " ".join(f"{k}={v:g}" for k, v in results["best"].items())
    lines.append(f"{config.env} ({config.algo}): {len(results['summary'])} configurations x "
                 f"{config.num_seeds} seeds after {results['updates']} updates; best {best} "
                 f"({baselines}); results in {workdir}")
    return lines


def write_outputs(workdir: pathlib.Path, results: dict[str, Any]) -> None:
    """results.json, curve.csv and curve.png, and for a grid sweep.csv; each written atomically
    or replaced whole. In a multi-process job only process 0 writes them."""
    if not processes.is_leader():
        return
    write_json(workdir / "results.json", results)
    members = results.get("members", [])
    grid = len(results.get("summary", [])) > 1
    names = [_member_column(m, grid) for m in members]
    rows = [[p["updates"], p["mean"], p["std"], *p["scores"]] for p in results["curve"]]
    _write_csv(workdir / "curve.csv", ["updates", "mean", "std", *names], rows)
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
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)


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
        grid = RunConfig.from_dict({k: v for k, v in results["config"].items() if k != "seeds"}).grid
        labels = ([" ".join(f"{k}={v:g}" for k, v in c.items()) for c in grid]
                  if len(grid) > 1 else [f"{algo} ({num_seeds} seeds)"])
        for c, label in enumerate(labels):
            mean = np.array([points[c]["mean"] for points in per_config])
            std = np.array([points[c]["std"] for points in per_config])
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
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)

