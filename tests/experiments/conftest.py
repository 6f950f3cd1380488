import os
import pathlib
import subprocess
import sys

import pytest

from lfjax.datagen import generate_dataset

REPO = pathlib.Path(__file__).resolve().parents[2]


def cli_env(root, **extra: str) -> dict[str, str]:
    """The environment an entry point runs in here: ours, with Minari data under ``root``, on
    the CPU, plus ``extra``."""
    return {**os.environ, "MINARI_DATASETS_PATH": str(root), "JAX_PLATFORMS": "cpu", **extra}


@pytest.fixture(scope="session")
def minari_root(tmp_path_factory):
    """A Minari data path holding a 4,000-step maze2d-umaze dataset, generated once for all the
    command-line tests here (they pass it to their subprocesses as MINARI_DATASETS_PATH)."""
    root = tmp_path_factory.mktemp("minari_cli")
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        generate_dataset("maze2d-umaze", num_steps=4000, seed=0, ref_episodes=3, progress=False)
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
    return root


# `python -c _KILL_AFTER_EPOCH <epoch> <module> <flags...>` runs an entry point that kills itself
# with SIGKILL (kill -9: no cleanup of any kind) right after the flow pretraining's checkpoint
# of <epoch> is committed: a kill at a known point in the middle of the flow stage.
_KILL_AFTER_EPOCH = """
import importlib, os, signal, sys
from absl import app
from lfjax.checkpoints import flows

epoch_to_die, module, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
save = flows.FlowProgress.save


def save_then_die(self, epoch, tree, record):
    save(self, epoch, tree, record)
    if epoch == epoch_to_die:
        os.kill(os.getpid(), signal.SIGKILL)


flows.FlowProgress.save = save_then_die
command = importlib.import_module(module)
if hasattr(command, "define_flags"):
    command.define_flags()
sys.argv = [module, *args]
app.run(lambda argv: sys.exit(command.main(argv)))
"""


def run_killed_after_epoch(epoch: int, module: str, args: list[str], root) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` with Minari data under ``root``, killed by SIGKILL right
    after the flow pretraining's checkpoint of ``epoch`` is committed."""
    return subprocess.run(
        [sys.executable, "-c", _KILL_AFTER_EPOCH, str(epoch), module, *args],
        cwd=REPO, env=cli_env(root), capture_output=True, text=True, timeout=600,
    )


# `python -c _SIGNAL_AT <chunk|epoch> <n> <SIGNAL[,SIGNAL]> <module> <flags...>` runs an entry point
# that sends itself the signals (SIGTERM, what a cluster sends before it stops a job; SIGINT,
# Ctrl-C) at a known point: as the agents' n-th training chunk starts (the chunk then runs to its
# end), or right after the flow pretraining's checkpoint of epoch n is committed.
_SIGNAL_AT = """
import importlib, os, signal, sys
from absl import app
from lfjax import agent
from lfjax.checkpoints import flows

where, n, names, module, args = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4], sys.argv[5:]


def send():
    for name in names:
        os.kill(os.getpid(), getattr(signal, name))


if where == "epoch":
    save = flows.FlowProgress.save

    def save_then_signal(self, epoch, tree, record):
        save(self, epoch, tree, record)
        if epoch == n:
            send()

    flows.FlowProgress.save = save_then_signal
else:
    make_train, calls = agent.make_train, [0]

    def signalling_make_train(*a, **k):
        train_chunk = make_train(*a, **k)

        def chunk(*args):
            calls[0] += 1
            if calls[0] == n:
                send()
            return train_chunk(*args)

        return chunk

    agent.make_train = signalling_make_train
command = importlib.import_module(module)
if hasattr(command, "define_flags"):
    command.define_flags()
sys.argv = [module, *args]
app.run(lambda argv: sys.exit(command.main(argv)))
"""


def run_signalled(where: str, n: int, signals: list[str], module: str, args: list[str],
                  root) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` with Minari data under ``root``, sending itself
    ``signals`` (names, in order) as its n-th agent chunk starts (``where="chunk"``) or after
    its flow checkpoint of epoch n (``where="epoch"``)."""
    return subprocess.run(
        [sys.executable, "-c", _SIGNAL_AT, where, str(n), ",".join(signals), module, *args],
        cwd=REPO, env=cli_env(root), capture_output=True, text=True, timeout=600,
    )
