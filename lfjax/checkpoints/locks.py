"""One writer per directory: an exclusive ``fcntl.flock`` on ``<directory>/lfjax.lock``, held for
as long as a run (or a flow's pretraining) writes there.

    with hold_directory(workdir):              # DirectoryBusyError naming the holder when taken
        ...                                    # train, checkpoint, write results
    with hold_directory(flow_dir, shared=True):
        ...                                    # read a finished flow; writers wait outside
    lock_holder(workdir)                       # who writes there now (a dict), or None

The kernel releases a flock when its process ends, however it ends (kill -9 included), so a
lock is never stale: the file left behind names the last holder and the next process simply
takes it. The exclusive holder writes who it is into the file (pid, host, start time, command),
so that a process refused can name it. Locks are re-entrant within a process: a run holds its
workdir for its whole life and the agent stage inside it asks again. In a multi-process job
(`lfjax.processes`) process 0 holds them for all, and a refusal stops every process.

On NFS, Linux emulates flock with byte-range locks that the server arbitrates (NFSv4), so
processes on different hosts exclude each other too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket
import sys
import time
from typing import Iterator

from lfjax import processes
from lfjax.checkpoints.trees import CheckpointError

LOCK_FILE = "lfjax.lock"
# A reader's probe holds a shared lock for microseconds, and a reader of a finished flow holds
# one for the second it takes to load it: a writer retries this long before it gives up on them.
READER_WAIT_S = 10.0
_RETRY_S = 0.05


class DirectoryBusyError(CheckpointError):
    """Another process holds the directory's lock; the message names it and what to do."""


@dataclasses.dataclass
class _Held:
    fd: int
    shared: bool
    count: int


# The locks this process holds, by real path: a second request for one it holds only counts.
_HELD: dict[str, _Held] = {}


def _key(directory: pathlib.Path) -> str:
    return os.path.realpath(directory)


@contextlib.contextmanager
def hold_directory(directory: str | os.PathLike, *, shared: bool = False) -> Iterator[None]:
    """Holds ``directory``'s lock for the ``with`` block (creating the directory if needed):
    exclusive for a writer, ``shared`` for a reader that must not see a writer's half-done work.

    DirectoryBusyError (in every process of a job) when another process holds it: a writer
    there, or (for an exclusive request) readers that do not finish within READER_WAIT_S.
    Re-entrant in one process, but a shared hold cannot become exclusive (RuntimeError).
    """
    directory = pathlib.Path(directory)

    def acquire() -> str | None:
        return _acquire(directory, shared) if processes.is_leader() else None

    key = processes.together(acquire, (DirectoryBusyError, OSError))
    try:
        yield
    finally:
        if key is not None:
            _release(key)


def _acquire(directory: pathlib.Path, shared: bool) -> str:
    """Takes the lock (or counts one more hold of a lock this process has); returns its key."""
    key = _key(directory)
    held = _HELD.get(key)
    if held is not None:
        if held.shared and not shared:
            raise RuntimeError(f"{directory}: this process holds a shared lock; release it first")
        held.count += 1
        return key
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    deadline = time.monotonic() + READER_WAIT_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = lock_holder(directory)
            if holder is not None or time.monotonic() > deadline:
                # A writer holds it (or readers never let go): say who, and stop.
                raise DirectoryBusyError(_busy_message(directory, holder)) from None
            time.sleep(_RETRY_S)  # only readers hold it, briefly: try again
            continue
        if not shared:
            _write_holder(fd)
        _HELD[key] = _Held(fd=fd, shared=shared, count=1)
        return key


def _release(key: str) -> None:
    held = _HELD[key]
    held.count -= 1
    if held.count == 0:
        del _HELD[key]
        os.close(held.fd)  # closing the last descriptor releases the flock


def _write_holder(fd: int) -> None:
    """Who holds the lock, as one JSON object, replacing the previous holder's."""
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": _command(),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    os.fsync(fd)


def _command() -> str:
    """This process's command line as typed (`python -m experiments.run ...`)."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return " ".join([pathlib.Path(argv[0]).name, *argv[1:]])


def lock_holder(directory: str | os.PathLike) -> dict | None:
    """Who holds ``directory``'s lock exclusively now: {"pid", "host", "started", "command"}
    as the holder wrote it ({} if unreadable), or None when nobody writes there (no lock
    file, only readers, or this very process). Creates nothing."""
    directory = pathlib.Path(directory)
    held = _HELD.get(_key(directory))
    if held is not None and not held.shared:
        return None  # it is ours
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_holder(fd: int) -> dict:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
    except (OSError, ValueError):
        return {}  # being written right now: the holder is still there, only nameless
    return info if isinstance(info, dict) else {}


def describe_holder(info: dict | None) -> str:
    """'pid 123 on host h (started ..., `command`)' from a lock_holder dict."""
    if not info:
        return "another process"
    # One line, whatever the command was (python -c with a script spans several).
    command = " ".join(str(info.get("command", "?")).split())
    if len(command) > 200:
        command = command[:199] + "…"
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')} (started "
            f"{info.get('started', '?')}: {command})")


def check_free(directory: str | os.PathLike) -> None:
    """DirectoryBusyError when another process writes in ``directory``; creates nothing (a
    check before a command writes anything, so that it is refused with nothing written)."""
    holder = lock_holder(directory)
    if holder is not None:
        raise DirectoryBusyError(_busy_message(pathlib.Path(directory), holder))


def _busy_message(directory: pathlib.Path, holder: dict | None) -> str:
    if holder is None:
        return (f"{directory} is being read by other processes (e.g. runs that decode through "
                f"the flow there) that did not let go within {READER_WAIT_S:.0f} s; wait for them "
                "to finish, or choose another directory")
    pid = holder.get("pid")
    stop = f" or stop it (kill {pid})" if pid else ""
    return (f"{directory} is in use by {describe_holder(holder)}; wait for it to finish{stop}, "
            "or choose another directory")
