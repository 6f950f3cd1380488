"""The files a run leaves for people: results.json, curve.csv and curve.png, each written
atomically (or replaced whole) after every evaluation, by process 0 only, and the run's last
line. A failed seed has no score in any of them (an empty cell, a gap): each names the failed
seeds, and every mean ± std is over the seeds that finished."""

import csv
import pathlib
from typing import Any

import jax
import numpy as np

from lfjax import processes
from lfjax.checkpoints import write_json
from lfjax.provenance import RUN_PACKAGES, package_versions


def versions() -> dict[str, str]:
    """The package versions and the devices a result was computed with."""
    out = package_versions(*RUN_PACKAGES)
    out["backend"] = jax.default_backend()
    out["devices"] = str(jax.devices())
    out["processes"] = str(jax.process_count())
    return out


def write_outputs(workdir: pathlib.Path, results: dict[str, Any]) -> None:
    """results.json, curve.csv and curve.png; each written atomically or replaced whole.
    In a multi-process job only process 0 writes them."""
    if not processes.is_leader():
        return
    write_json(workdir / "results.json", results)
    curve = results["curve"]
    tmp = workdir / ".curve.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        num_seeds = len(results["config"]["seeds"])
        writer.writerow(["updates", "mean", "std", *[f"seed_{s}" for s in results["config"]["seeds"]],
                         "failed_seeds"])
        for point in curve:
            # None (a failed seed; every seed for mean and std) is an empty cell.
            writer.writerow([point["updates"], point["mean"], point["std"], *point["scores"][:num_seeds],
                             " ".join(str(s) for s in point.get("failed_seeds", []))])
    tmp.replace(workdir / "curve.csv")
    plot_curves(workdir / "curve.png", results)


def plot_curves(path: pathlib.Path, results: dict[str, Any]) -> None:
    """Normalized score vs updates (mean ± std over seeds), and the flow's validation NLL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_score, ax_nll) = plt.subplots(1, 2, figsize=(11, 4))
    curve = results["curve"]
    if curve:
        x = np.array([p["updates"] for p in curve])
        # None (every seed failed by then) -> NaN: a gap in the line.
        mean = np.array([p["mean"] for p in curve], float)
        std = np.array([p["std"] for p in curve], float)
        algo = results["config"].get("algo", "latent_awac").replace("_", " ")
        ax_score.plot(x, mean, label=f"{algo} ({seeds_phrase(results)})")
        ax_score.fill_between(x, mean - std, mean + std, alpha=0.25)
    for name, value in results.get("baselines", {}).items():
        ax_score.axhline(value, linestyle="--", linewidth=1, color="gray" if "random" in name else "C1", label=name)
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


def seeds_phrase(results: dict[str, Any]) -> str:
    """'3 seeds', or '2 of 3 seeds; seed 4 failed' when some failed."""
    num_seeds = len(results["config"]["seeds"])
    failed = results["final"]["failed_seeds"]
    if not failed:
        return f"{num_seeds} seeds"
    names = f"seed{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))}"
    return f"{num_seeds - len(failed)} of {num_seeds} seeds; {names} failed"


def final_line(results: dict[str, Any], workdir: pathlib.Path, baselines: str) -> tuple[str, int]:
    """(the run's last line, its exit status): mean ± std over the seeds that finished and the
    failed ones named (status 0), or that every seed failed (status 1)."""
    config, final = results["config"], results["final"]
    what = f"{config['env']} ({config['algo']})"
    failures = "; ".join(
        f"seed {f['seed']} went non-finite within updates {f['within_updates'][0]}-{f['within_updates'][1]}"
        if f.get("within_updates") else f"seed {f['seed']} went non-finite"
        for f in final.get("failures", [])
    )
    if final["mean"] is None:
        return (f"{what}: every seed failed ({failures}); no score. The curve up to the failures is "
                f"in {workdir}; try other seeds, or a smaller --actor_lr / --critic_lr", 1)
    return (f"{what}: normalized score {final['mean']:.1f} ± {final['std']:.1f} over "
            f"{seeds_phrase(results)} after {results['updates']} updates ({baselines})"
            + (f" [{failures}]" if failures else "") + f"; results in {workdir}", 0)
