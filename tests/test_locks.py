"""One writer per directory (lfjax.checkpoints.locks): a second process is refused with the
holder's name, a holder killed with SIGKILL leaves no stale lock, readers share."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest

from lfjax.checkpoints import DirectoryBusyError, check_free, hold_directory, lock_holder, locks

REPO = pathlib.Path(__file__).resolve().parents[1]
HOLDER = """
import sys, time
from lfjax.checkpoints import hold_directory
with hold_directory(sys.argv[1], shared=sys.argv[2] == "shared"):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder():
    """Starts another process holding a directory's lock: holder(directory, shared=False)."""
    started = []

    def start(directory, shared=False):
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(directory), "shared" if shared else "exclusive"],
            cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"},
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_stale_lock(
        tmp_path, holder):
    workdir = tmp_path / "w"
    other = holder(workdir)
    with pytest.raises(DirectoryBusyError, match=rf"in use by pid {other.pid} on host .*kill {other.pid}") as refused:
        with hold_directory(workdir):
            pass
    assert "\n" not in str(refused.value)  # one line, though the holder's command spans several
    with pytest.raises(DirectoryBusyError, match=f"pid {other.pid}"):
        check_free(workdir)
    assert lock_holder(workdir)["pid"] == other.pid
    # argv[0] as the holder was started: "python", or "python3.11" where the interpreter that
    # runs the tests is named so (pytest-xdist's workers).
    assert re.match(r"\S*python[\d.]* -c\s", lock_holder(workdir)["command"]), lock_holder(workdir)

    other.send_signal(signal.SIGKILL)
    other.wait()
    assert json.loads((workdir / locks.LOCK_FILE).read_text())["pid"] == other.pid  # its record stays
    assert lock_holder(workdir) is None  # but the kernel dropped its lock
    with hold_directory(workdir):
        assert json.loads((workdir / locks.LOCK_FILE).read_text())["pid"] == os.getpid()
        assert lock_holder(workdir) is None  # ours


def test_readers_share_a_directory_and_a_writer_waits_for_them(tmp_path, holder, monkeypatch):
    flow_dir = tmp_path / "flow"
    holder(flow_dir, shared=True)
    assert lock_holder(flow_dir) is None  # nobody writes there
    with hold_directory(flow_dir, shared=True):
        pass
    monkeypatch.setattr(locks, "READER_WAIT_S", 0.3)
    with pytest.raises(DirectoryBusyError, match="being read by other processes"):
        with hold_directory(flow_dir):
            pass


def test_a_process_may_ask_again_for_a_lock_it_holds(tmp_path):
    with hold_directory(tmp_path):
        with hold_directory(tmp_path):
            with hold_directory(tmp_path, shared=True):
                check_free(tmp_path)
    assert locks._HELD == {}
    with hold_directory(tmp_path, shared=True):
        with pytest.raises(RuntimeError, match="shared"):
            with hold_directory(tmp_path):
                pass
    assert locks._HELD == {}
