"""What every command-line entry point shares: one-line errors with their exit codes, the
log, joining a multi-process job, and running a command's stages so that a mistake is one line
and lost contact with another process leaves cleanly.

Exit codes: 0 done; 143 / 130 stopped by SIGTERM / SIGINT after saving (experiments/stopping.py:
one line with the command that continues it); 2 a mistake the user can fix (one line on stderr, nothing written), a
directory another process is writing in, or a full disk (one line: what was being written, how
much it needed, and to rerun with --resume once there is room); 1 the training failed (a flow
that never reached a finite NLL, every seed non-finite), the job lost a process, or another
cause that is not the user's.
"""

import dataclasses
import os
import pathlib
import shlex
import sys
from typing import Any, Callable

import jax
from tqdm import tqdm

from lfjax import processes
from lfjax.checkpoints import CheckpointError, DiskFullError, is_disk_full
from lfjax.data import DatasetError
from lfjax.pretraining import FlowDivergedError

Log = Callable[[str], None]


class UserError(Exception):
    """A mistake the user can fix; printed as one or two lines, exit status 2."""


# What a command reports as one line on stderr with exit status 2 (the user can fix it).
USER_ERRORS = (UserError, CheckpointError, DatasetError, ValueError)


def fail(message: str, status: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def start_cli(argv: list[str]) -> int | None:
    """The common start of the command-line entry points: quiets orbax's logging and refuses
    positional arguments (absl would silently ignore them). Returns an exit status to stop
    with, or None to go on."""
    from lfjax.checkpoints import quiet_orbax

    quiet_orbax()
    if len(argv) > 1:
        return fail(f"unexpected arguments {argv[1:]}; flags look like --env=maze2d-umaze")
    return None


def log_line(message: str) -> None:
    tqdm.write(message, file=sys.stdout)


def quiet(message: str) -> None:
    """The log of processes other than 0 in a multi-process job: process 0 speaks for all."""


def join_processes(distributed: bool) -> None:
    """Joins the multi-process job when --distributed (or LFJAX_DISTRIBUTED=1) asks for it.
    Must come before anything touches a device. UserError when the job is not described."""
    if processes.distributed_requested(distributed or None):
        # Said first: joining blocks until every process is there, and if the coordinator
        # never answers JAX ends the process itself after its timeout (5 min).
        address = os.environ.get("JAX_COORDINATOR_ADDRESS")
        process, count = os.environ.get("LFJAX_PROCESS_ID"), os.environ.get("LFJAX_NUM_PROCESSES")
        where = f"at {address}" if address else "(coordinator from the cluster environment)"
        who = f" as process {process} of {count}" if process and count else ""
        print(f"joining the multi-process job {where}{who}; it starts when every process has "
              "joined", file=sys.stderr, flush=True)
    try:
        processes.maybe_initialize_distributed(distributed or None)
    except ValueError as e:
        raise UserError(f"--distributed: {e}") from e


def job_output(progress: bool) -> tuple[Log, bool]:
    """This process's log and whether it shows progress bars: process 0 speaks for the job."""
    if processes.is_leader():
        return log_line, progress
    return quiet, False


def resume_command(module: str) -> str:
    """This command as typed, with --resume: what continues it after a stop."""
    args = [a for a in sys.argv[1:] if a not in ("--resume", "--noresume")]
    return shlex.join(["python", "-m", module, *args, "--resume"])


def stopped(stop, where: str, saved: str, module: str) -> int:
    """The last line of a command stopped by a signal (process 0, on stderr) and its exit
    status (128 + the signal): where it stopped, what is saved, the command that continues it."""
    if processes.is_leader():
        hosts = " on every host" if jax.process_count() > 1 else ""
        print(f"interrupted by {stop.name} {where}; {saved}; continue with{hosts}: "
              f"{resume_command(module)}", file=sys.stderr, flush=True)
    return stop.exit_status


def check_writable(directory: pathlib.Path, flag: str) -> None:
    """UserError unless ``directory`` exists as a writable directory or can be created;
    creates nothing (a run refused later must leave no trace)."""
    existing = directory.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag}={directory}: {existing} is a file, not a directory; choose another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag}={directory}: {existing} is not writable; choose another {flag}")


def run_stages(stages: Callable[[], int], *, after_lost_contact: str,
               after_disk_full: str = "free space and rerun the same command with --resume") -> int:
    """Runs a command's stages and returns its exit status. A user-facing error, in this or any
    other process of the job, is one line on stderr and status 2; so is a full disk (with
    ``after_disk_full``: how to go on once there is room); a training that failed
    (FlowDivergedError) is one line and status 1; lost contact with another process is one line
    (with ``after_lost_contact``: what is saved, how to go on) and status 1."""
    try:
        return stages()
    except DiskFullError as e:  # what lfjax was writing, and roughly how much it needed
        return fail(f"{e}; {after_disk_full}")
    except (*USER_ERRORS, processes.OtherProcessError) as e:
        if is_disk_full(e):  # a write lfjax does not wrap (a dataset, a lock file, tracking)
            return fail(f"no space left on device ({_first_line(e)}); {after_disk_full}")
        return fail(str(e))
    except FlowDivergedError as e:
        return fail(str(e), status=1)
    except OSError as e:  # a directory that vanished, permissions: the environment, not a bug
        if is_disk_full(e):
            return fail(f"no space left on device ({_first_line(e)}); {after_disk_full}")
        return fail(f"{e}; check the path, its permissions and the free disk space (files "
                    "written before this are intact)")
    except jax.errors.JaxRuntimeError as e:
        if jax.process_count() == 1:
            raise  # one process: a bug, shown whole
        processes.leave_after_lost_contact(e, after_lost_contact)


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:299] + "…"


def check_workdir(workdir: pathlib.Path, config, resume: bool) -> None:
    """Refuses to mix runs: a workdir holds one configuration. On --resume, the settings that
    only say how long to train and how to evaluate (RunConfig.RESUMABLE: --num_updates, at
    least the updates done, --eval_every, --eval_episodes, --final_eval_episodes) may change;
    the run records each change (results.json "resumed")."""
    from lfjax.checkpoints import as_json, committed_steps, read_json
    from lfjax.checkpoints.locks import LOCK_FILE
    from lfjax.configs import RunConfig

    config_path = workdir / "config.json"
    if not config_path.exists():
        if resume and workdir.exists() and any(p.name != LOCK_FILE for p in workdir.iterdir()):
            raise UserError(f"--resume: {workdir} holds no run (no config.json)")
        return
    try:
        saved = read_json(config_path)
    except CheckpointError as e:
        raise UserError(str(e)) from e
    current = as_json(config.to_dict())
    diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    fixed = [k for k in diff if k not in RunConfig.RESUMABLE]
    if fixed:
        from lfjax.stages.resume import differences

        may = ", ".join(f"--{k}" for k in RunConfig.RESUMABLE)
        # The leaves, so that a preset changed since the run was made says which flag restores it.
        leaves = differences({k: saved.get(k) for k in fixed}, {k: current.get(k) for k in fixed})
        raise UserError(
            f"{workdir} holds a run with a different configuration (differs in: {', '.join(fixed)}): "
            f"{'; '.join(leaves)} (saved -> now); choose another --workdir, or rerun with the flags "
            f"the run was made with (on --resume only {may} may change)"
        )
    was = ", ".join(f"--{k}={saved.get(k)}" for k in diff)
    if not resume:
        raise UserError(
            f"{workdir} already holds this run{f' (with {was})' if diff else ''}; pass --resume to "
            "continue it" + (" with the new settings" if diff else "") + ", or choose another --workdir"
        )
    done = max(committed_steps(workdir), default=0)
    if config.num_updates < done:
        raise UserError(
            f"--resume: the run in {workdir} has done {done} updates already; --num_updates "
            f"must be at least {done} (it was {saved.get('num_updates')})"
        )


@dataclasses.dataclass(frozen=True)
class PresetChoice:
    """The preset a command runs and why (experiments.cli.choose_preset).

    Attributes:
        name: a key of lfjax.configs.PRESETS.
        chosen: how, as results.json records it: "given" (--preset=NAME), or "auto: ..." with
            the reason (the devices JAX sees, or the run already in the workdir).
        line: the first line the command prints: which, why, and the flag for the other.
    """

    name: str
    chosen: str
    line: str

    def record(self) -> dict[str, str]:
        """results.json's "preset": {"name", "chosen"}."""
        return {"name": self.name, "chosen": self.chosen}


# Measured on the 2-core development CPU (README, "Quickstart"): what the paper protocol costs there.
PAPER_HOURS_PER_SEED_ON_CPU = 10


def choose_preset(requested: str, made_with: Callable[[str], Any] = lambda name: None) -> PresetChoice:
    """--preset -> the preset to run. A preset's name is taken as given. "auto" (the default)
    takes the preset an existing run was made with, when ``made_with(name)`` names one (it
    returns the reason, e.g. "the run in runs/w was made with it", for the preset ``name`` whose
    configuration the saved run has; None otherwise): so that a run made here with auto resumes as the same
    configuration on a machine with other devices. Else "paper" when JAX sees an accelerator
    (a GPU or TPU) and "quick" when it sees only CPUs.

    Asks JAX for its devices (initializing its backend): in a multi-process job call it after
    joining (join_processes); every process then sees the same devices and chooses the same."""
    from lfjax.configs import PRESETS, RunConfig

    updates = f"{RunConfig().num_updates:,}"
    # The flag for the other preset, and what it runs.
    other = {
        "quick": ("--preset=paper", f"the paper protocol: {updates} updates per seed, "
                  f"~{PAPER_HOURS_PER_SEED_ON_CPU} h per seed on a 2-core CPU"),
        "paper": ("--preset=quick", "the minutes-long CPU preset"),
    }
    if requested != "auto":
        flag, what = other[requested]
        return PresetChoice(requested, "given", f"preset: {requested} (given by --preset; {flag} for {what})")
    for name in PRESETS:
        why = made_with(name)
        if why is not None:
            flag, what = other[name]
            return PresetChoice(
                name, f"auto: {why}",
                f"preset: {name} ({why}; {flag} with another "
                f"--workdir for {what})")
    devices = jax.devices()
    accelerators = [d for d in devices if d.platform != "cpu"]
    if not accelerators:
        return PresetChoice(
            "quick", "auto: JAX sees no accelerator, only cpu",
            f"preset: quick (JAX sees no accelerator, only cpu; the paper protocol, {updates} "
            f"updates per seed, is --preset=paper, ~{PAPER_HOURS_PER_SEED_ON_CPU} h per seed on a "
            "2-core CPU)")
    kinds = ", ".join(sorted({d.platform for d in accelerators}))
    seen = f"JAX sees {len(accelerators)} {kinds} device(s)"
    flag, what = other["paper"]
    return PresetChoice("paper", f"auto: {seen}", f"preset: paper ({seen}; {flag} for {what})")
