"""Stopping a command cleanly on SIGTERM (what SLURM, Kubernetes and spot VMs send before they
stop a job) or SIGINT (Ctrl-C).

    with stopping.on_signals() as stop:
        stages.agent.train_agent(..., should_stop=stop.requested)   # asked between chunks
        ...
        return stop.exit_status                                     # 143 (SIGTERM), 130 (SIGINT)

The first signal only sets a flag (and says so on stdout): the training loops ask
``stop.requested()`` at their boundaries (after a flow epoch, before an agent chunk), save what
they have and end; the command then exits with 128 + the signal's number, as the shell would
report for the signal. A second signal stops the process at once: the first one's handler
restores the default action, and a watcher thread covers the time before that handler can run
(Python runs signal handlers between bytecodes, so not while the main thread is inside one
long jitted chunk): it sees the second signal arrive and ends the process itself.

Across processes (jax.distributed), ``requested()`` is a collective: every process asks at the
same boundaries and they all stop at the same one if any of them got a signal. (JAX's own
preemption notice, `multihost_utils.reached_preemption_sync_point`, listens to SIGTERM
through a C++ handler that a Python handler replaces, knows nothing of SIGINT, and wants to be
asked at every step with consecutive step ids; one small all-gather per chunk does the same job
here, as `lfjax.processes.together` already does for errors.)
"""

import contextlib
import os
import signal
import threading
from typing import Iterator

from lfjax import processes

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    """Whether this command was asked to stop, and with which signal (0: not asked)."""

    def __init__(self):
        self.signum = 0  # the first signal this process received
        self.agreed = 0  # the signal the processes of the job stop for (after requested())

    def requested(self) -> bool:
        """Whether this process (or, across processes, any process) was asked to stop. Every
        process of a job must call it at the same points."""
        self.agreed = max(self.agreed, processes.max_over_processes(self.signum))
        return self.agreed != 0

    @property
    def exit_status(self) -> int:
        return 128 + (self.agreed or self.signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.agreed or self.signum).name

    def _handle(self, signum: int, frame) -> None:
        # The main thread, between bytecodes. From now on either signal stops the process at
        # once (the default action).
        self.signum = self.signum or signum
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_DFL)

    def _watch(self, fd: int) -> None:
        """Reads the signal numbers Python's C-level handler writes to the wakeup fd, at once,
        even while the main thread is inside a long computation."""
        seen = 0
        while data := os.read(fd, 64):
            for signum in data:
                if signum not in SIGNALS:
                    continue
                seen += 1
                name = signal.Signals(signum).name
                if seen == 1:
                    self.signum = self.signum or signum
                    os.write(1, f"{name} received: stopping after the current chunk of updates "
                                "or flow epoch, with a checkpoint; send it again to stop at "
                                "once\n".encode())
                else:  # the main thread has not run the first handler yet: stop here
                    os.write(2, f"{name} received again: stopping at once\n".encode())
                    os._exit(128 + signum)


@contextlib.contextmanager
def on_signals() -> Iterator[GracefulStop]:
    """Handles SIGTERM and SIGINT as the module docstring says for the ``with`` block (the
    main thread only); the previous handlers are back after it."""
    stop = GracefulStop()
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, stop._handle) for sig in SIGNALS}
    watcher = threading.Thread(target=stop._watch, args=(read_fd,), daemon=True,
                               name="lfjax-stop-signals")
    watcher.start()
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_wakeup)
        os.close(write_fd)  # the watcher reads the end of the pipe and returns
        watcher.join(timeout=1)
        os.close(read_fd)
