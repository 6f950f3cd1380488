"""Run tracking at the edge: TensorBoard event files (``--log_dir``) and Weights & Biases
(``--wandb``), fed from what a run already produces.

    tracker = open_tracker(log_dir=..., use_wandb=..., workdir=..., config=...)
    stages.agent.train_agent(..., report=lambda results: (write_outputs(results), tracker.report(results)))
    tracker.close()

``report`` takes the results dict that `lfjax.stages.agent.train_agent` hands out after every
evaluation (and once more at the end) and logs what is new in it:

- per evaluation, at step = updates: ``eval/score_mean``, ``eval/score_std``,
  ``eval/score/seed_<s>`` (normalized scores; in a grid ``eval/score/<name>=<v>_seed_<s>`` per
  member; none for a failed seed), and every training metric of the chunk before it (its mean
  over updates and seeds) as ``train/<name>``: critic_loss, actor_loss, q_mean, weight_mean,
  weight_clipped_frac, updates_per_second, and whatever else the curve holds;
- once, at step = epoch: the flow's ``flow/train_nll`` and ``flow/val_nll`` (mean over flows).

A resumed run logs its whole curve again (the same values at the same steps) into a new event
file or a new W&B run, so each holds the complete curve. Neither tracker's package is imported
unless asked for: they are the optional extras ``lfjax[tensorboard]`` (tensorboardX) and
``lfjax[wandb]``. Only process 0 of a multi-process job should open a tracker.
"""

import importlib
import json
import pathlib
from typing import Any

# Flag -> (module, the extra that installs it).
EXTRAS = {"--log_dir": ("tensorboardX", "tensorboard"), "--wandb": ("wandb", "wandb")}

# Curve-point keys that are not training metrics.
_EVAL_KEYS = ("updates", "eval_seed", "episodes", "scores", "mean", "std")


def check_installed(log_dir: str | None, use_wandb: bool) -> None:
    """ValueError (one line naming the extra to install) when a requested tracker's package is
    missing. Imports the package, so call it only when the tracker is asked for."""
    wanted = [flag for flag, on in (("--log_dir", bool(log_dir)), ("--wandb", use_wandb)) if on]
    for flag in wanted:
        module, extra = EXTRAS[flag]
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(
                f"{flag} needs the {module} package ({e}); install the extra lfjax[{extra}] "
                f"(in the lfjax checkout: pip install -e \".[{extra}]\")"
            ) from None


def evaluation_scalars(point: dict[str, Any], names: list[str]) -> dict[str, float]:
    """One curve point as {tag: value}: the normalized scores (names: one per member, e.g.
    "seed_3") and the chunk's training metrics; values that are None (a failed seed) are left
    out."""
    out = {"eval/score_mean": point["mean"], "eval/score_std": point["std"]}
    out.update({f"eval/score/{name}": score for name, score in zip(names, point["scores"])})
    out.update({f"train/{k}": v for k, v in point.items()
                if k not in _EVAL_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)})
    return {k: float(v) for k, v in out.items() if v is not None}


def member_names(results: dict[str, Any]) -> list[str]:
    """"seed_<s>" per member, with the grid configuration's settings in front in a grid."""
    members = results.get("members")
    if not members:
        return [f"seed_{s}" for s in results["config"]["seeds"]]
    grid = len(results.get("summary", [])) > 1
    return ["_".join([*(f"{k}={v:g}" for k, v in m["config"].items() if grid), f"seed_{m['seed']}"])
            for m in members]


def flow_scalars(history: list[dict[str, Any]]) -> list[tuple[int, dict[str, float]]]:
    """The flow's per-epoch NLLs as [(epoch, {tag: mean over flows})]."""
    return [
        (int(h["epoch"]), {f"flow/{k}": float(sum(h[k]) / len(h[k])) for k in ("train_nll", "val_nll") if h.get(k)})
        for h in history
    ]


class TensorBoardWriter:
    """Scalars into TensorBoard event files in ``log_dir`` (tensorboardX: no TensorFlow)."""

    def __init__(self, log_dir: pathlib.Path, config: dict[str, Any]):
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(logdir=str(log_dir))
        self._writer.add_text("config", "```\n" + json.dumps(config, indent=1, default=str) + "\n```", 0)

    def scalars(self, step_name: str, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()

    def summary(self, values: dict[str, Any]) -> None:
        """The final figures as text (they are also the last curve point)."""
        self._writer.add_text("final", "```\n" + json.dumps(values, indent=1, default=str) + "\n```", 0)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class WandbWriter:
    """One W&B run. Offline (no network): ``WANDB_MODE=offline``; the run is then a directory
    under ``<dir>/wandb/`` that ``wandb sync`` uploads later."""

    def __init__(self, dir: pathlib.Path, config: dict[str, Any], name: str, project: str):
        import wandb

        dir.mkdir(parents=True, exist_ok=True)
        try:
            self._run = wandb.init(project=project, name=name, dir=str(dir), config=config)
        except Exception as e:  # no login in online mode, a bad project: the user can fix it
            raise ValueError(f"--wandb: {type(e).__name__}: {e} (offline, without an account: "
                             "set WANDB_MODE=offline)") from None
        self._run.define_metric("updates")
        self._run.define_metric("eval/*", step_metric="updates")
        self._run.define_metric("train/*", step_metric="updates")
        self._run.define_metric("flow/epoch")
        self._run.define_metric("flow/*", step_metric="flow/epoch")

    @property
    def directory(self) -> pathlib.Path:
        return pathlib.Path(self._run.dir).parent  # <dir>/wandb/<mode>-run-<time>-<id>

    def scalars(self, step_name: str, step: int, values: dict[str, float]) -> None:
        self._run.log({step_name: step, **values})

    def summary(self, values: dict[str, Any]) -> None:
        self._run.summary.update(values)

    def close(self) -> None:
        self._run.finish()


class Tracker:
    """Logs what is new in each results dict to every writer (none: does nothing)."""

    def __init__(self, writers: list):
        self.writers = writers
        self._logged: set[int] = set()
        self._flow_logged = False

    def report(self, results: dict[str, Any]) -> None:
        if not self.writers:
            return
        if not self._flow_logged:
            self._flow_logged = True
            for epoch, values in flow_scalars(results.get("flow", {}).get("history", [])):
                self._write("flow/epoch", epoch, values)
        names = member_names(results)
        for point in results["curve"]:
            if point["updates"] not in self._logged:
                self._logged.add(point["updates"])
                self._write("updates", point["updates"], evaluation_scalars(point, names))
        if results.get("status") == "finished":
            final = results["final"]
            self._summary({
                "final/score_mean": final["mean"], "final/score_std": final["std"],
                **{f"final/score/{n}": v for n, v in zip(names, final["scores"]) if v is not None},
                **{f"baseline/{name}": v for name, v in results.get("baselines", {}).items()},
                "updates": results["updates"],
            })

    def _write(self, step_name: str, step: int, values: dict[str, float]) -> None:
        for writer in self.writers:
            writer.scalars(step_name, step, values)

    def _summary(self, values: dict[str, Any]) -> None:
        for writer in self.writers:
            writer.summary(values)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers = []


def open_tracker(*, log_dir: str | None, use_wandb: bool, workdir: pathlib.Path,
                 config: dict[str, Any], wandb_project: str = "lfjax") -> Tracker:
    """The run's tracker: TensorBoard event files in log_dir (when given) and a W&B run
    in <workdir>/wandb (when use_wandb); with neither, a tracker that does nothing."""
    writers = []
    if log_dir:
        writers.append(TensorBoardWriter(pathlib.Path(log_dir), config))
    if use_wandb:
        try:
            writers.append(WandbWriter(workdir, config, name=workdir.name, project=wandb_project))
        except BaseException:
            for writer in writers:
                writer.close()
            raise
    return Tracker(writers)
