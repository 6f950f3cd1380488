"""The files a run leaves for people: results.json, curve.csv and curve.png, each written
atomically (or replaced whole) after every evaluation, by process 0 only."""

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
        writer.writerow(["updates", "mean", "std", *[f"seed_{s}" for s in results["config"]["seeds"]]])
        for point in curve:
            writer.writerow([point["updates"], point["mean"], point["std"], *point["scores"][:num_seeds]])
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
        mean = np.array([p["mean"] for p in curve])
        std = np.array([p["std"] for p in curve])
        algo = results["config"].get("algo", "latent_awac").replace("_", " ")
        ax_score.plot(x, mean, label=f"{algo} ({len(curve[0]['scores'])} seeds)")
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
