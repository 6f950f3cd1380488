"""experiments/stopping.py: the first SIGTERM or SIGINT only asks the command to stop; a second
one stops it at once, even while the main thread is inside a long computation. (Whole runs
stopped by a signal: test_reliability.py.)"""

import signal
import subprocess
import sys
import time

from .conftest import REPO

ASKED = """
import os, signal, time
from experiments import stopping

# What the process started with (a shell's background job starts with SIGINT ignored).
handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
with stopping.on_signals() as stop:
    before = stop.requested()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)  # the handler runs in the main thread, between bytecodes
    print(before, stop.requested(), stop.exit_status, stop.name, flush=True)
print(signal.getsignal(signal.SIGTERM) == handlers[0], signal.getsignal(signal.SIGINT) == handlers[1])
"""


def test_the_first_signal_only_asks_and_the_handlers_are_restored_after():
    proc = subprocess.run([sys.executable, "-c", ASKED], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("SIGTERM received: stopping after the current chunk")
    assert lines[1:] == ["False True 143 SIGTERM", "True True"]


# The main thread blocks in C (a read restarted after every signal, as a long jitted chunk
# would keep it there): Python never gets to run a signal handler in it.
STUCK_IN_C = """
import ctypes, os, signal
from experiments import stopping

with stopping.on_signals() as stop:
    for sig in stopping.SIGNALS:
        signal.siginterrupt(sig, False)
    read_fd, _ = os.pipe()
    read, buffer = ctypes.CDLL(None).read, ctypes.create_string_buffer(1)
    print("ready", flush=True)
    read(read_fd, buffer, 1)
print("never", flush=True)
"""


def test_a_second_signal_stops_at_once_even_inside_a_long_computation():
    proc = subprocess.Popen([sys.executable, "-c", STUCK_IN_C], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(1)  # into the read (the next line of the script)
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline().startswith("SIGTERM received: stopping after the current chunk")
        time.sleep(0.5)
        assert proc.poll() is None  # the first only asked
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert proc.stderr.read() == "SIGTERM received again: stopping at once\n"
    assert proc.stdout.read() == ""
