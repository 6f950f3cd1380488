"""One experiment as several JAX processes (``jax.distributed``): joining the job, who writes,
who waits, and how a mistake found by one process stops all of them with the same message.
(Where arrays live on the devices of the job is `lfjax.sharding`.)

Every process runs the same command with the same flags. They compute the same things
(configuration, initial parameters) and split the seeds between them; process 0 alone writes
the JSON, CSV and plot files, while orbax checkpoints are written by every process (each its
own part of the arrays). The run's directories must therefore be on a filesystem that every
host sees, which :func:`check_shared_directory` verifies before anything is trained.

In a one-process job every function here is a plain call or a no-op.
"""

import os
import pathlib
import random
import sys
import zlib
from typing import Any, Callable, NoReturn, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

T = TypeVar("T")

_MESSAGE_BYTES = 2000


class OtherProcessError(Exception):
    """Another process of the job stopped with a user-facing error; this one stops too."""


def distributed_requested(enabled: bool | None = None) -> bool:
    """enabled, or when it is None the environment variable LFJAX_DISTRIBUTED (1/true/yes)."""
    if enabled is None:
        return os.environ.get("LFJAX_DISTRIBUTED", "").lower() in ("1", "true", "yes")
    return enabled


def maybe_initialize_distributed(enabled: bool | None = None) -> bool:
    """Joins a multi-process JAX job when asked to; returns whether it did.

    enabled: None reads the environment variable ``LFJAX_DISTRIBUTED`` (1/true/yes).
    When enabled, calls ``jax.distributed.initialize``, which auto-detects SLURM, Open MPI,
    Kubernetes and Cloud TPU jobs; elsewhere set ``JAX_COORDINATOR_ADDRESS`` (host:port of
    process 0, read by JAX itself), ``LFJAX_NUM_PROCESSES`` and ``LFJAX_PROCESS_ID``.
    Must run before anything else touches a device, and in every process. Raises ValueError
    naming the fix when the job is not described (no coordinator, ids that are not integers).
    """
    if not distributed_requested(enabled):
        return False
    setup = (
        "set JAX_COORDINATOR_ADDRESS (host:port of process 0), LFJAX_NUM_PROCESSES and "
        "LFJAX_PROCESS_ID (0, 1, ...) on every host, or launch under SLURM, Open MPI, "
        "Kubernetes or on Cloud TPU, where they are detected"
    )
    ids = {}
    for name in ("LFJAX_NUM_PROCESSES", "LFJAX_PROCESS_ID"):
        value = os.environ.get(name, "").strip()
        try:
            ids[name] = int(value) if value else None
        except ValueError:
            raise ValueError(f"{name}={value!r} is not an integer; {setup}") from None
    try:
        jax.distributed.initialize(
            num_processes=ids["LFJAX_NUM_PROCESSES"], process_id=ids["LFJAX_PROCESS_ID"]
        )
    except ValueError as e:  # e.g. "coordinator_address should be defined."
        raise ValueError(f"cannot join a multi-process job ({e}); {setup}") from e
    return True


def broadcast_from_leader(tree: Any) -> Any:
    """Process 0's value of a host pytree, in every process (identity in a one-process job)."""
    if jax.process_count() == 1:
        return tree
    return multihost_utils.broadcast_one_to_all(tree)


def is_leader() -> bool:
    """Whether this process writes the result files and prints (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process gets here (the same name in all of them)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def _gather(array: np.ndarray) -> np.ndarray:
    """[P, ...]: every process's array, in process order."""
    return np.asarray(multihost_utils.process_allgather(array))


def _encode(message: str) -> np.ndarray:
    data = message.encode()[:_MESSAGE_BYTES]
    out = np.zeros(_MESSAGE_BYTES + 4, np.uint8)
    out[:4] = np.frombuffer(np.uint32(len(data)).tobytes(), np.uint8)
    out[4 : 4 + len(data)] = np.frombuffer(data, np.uint8)
    return out


def _decode(row: np.ndarray) -> str:
    length = int(np.frombuffer(row[:4].tobytes(), np.uint32)[0])
    return row[4 : 4 + length].tobytes().decode(errors="replace")


def _first_failure(error: BaseException | None) -> tuple[int, str] | None:
    """Every process learns whether any failed: (process, message) of the first, or None.
    A collective: every process of a multi-process job must call it."""
    flags = _gather(np.array([error is not None], np.int32))[:, 0]
    if not flags.any():
        return None
    rows = _gather(_encode("" if error is None else str(error)))
    first = int(np.flatnonzero(flags)[0])
    return first, _decode(rows[first])


def together(
    fn: Callable[[], T],
    errors: tuple[type[BaseException], ...],
    *,
    leader_first: bool = False,
) -> T:
    """Calls ``fn()`` in every process; if it raises one of ``errors`` in any process, every
    process raises (the failing ones their own error, the others :class:`OtherProcessError`
    with its message) instead of waiting for the failed one forever.

    leader_first: process 0 calls fn before the others do (e.g. to generate a dataset the
    others then find on a shared disk).
    """
    if jax.process_count() == 1:
        return fn()

    def attempt():
        try:
            return fn(), None
        except errors as e:
            return None, e

    result, error = None, None
    if leader_first:
        if is_leader():
            result, error = attempt()
        _raise_if_any(error)
    if not (leader_first and is_leader()):
        result, error = attempt()
    _raise_if_any(error)
    return result


def _raise_if_any(error: BaseException | None) -> None:
    failure = _first_failure(error)
    if failure is None:
        return
    if error is not None:
        raise error
    process, message = failure
    raise OtherProcessError(f"process {process} of {jax.process_count()}: {message}")


def max_over_processes(value: int) -> int:
    """The largest of every process's ``value`` (a small non-negative int; itself in a
    one-process job). A collective: every process must call it at the same point, e.g. to
    agree whether any of them was asked to stop."""
    if jax.process_count() == 1:
        return value
    return int(_gather(np.array([value], np.int32))[:, 0].max())


def check_same(what: str, value: bytes, fix: str) -> None:
    """Raises ValueError in every process unless ``value`` is the same in all of them."""
    if jax.process_count() == 1:
        return
    checksums = _gather(np.array([zlib.crc32(value)], np.uint32))[:, 0]
    differ = np.flatnonzero(checksums != checksums[0])
    if differ.size:
        raise ValueError(
            f"{what} differs between processes (process 0 and process(es) {differ.tolist()}); {fix}"
        )


def check_shared_directory(directory: pathlib.Path, flag: str) -> None:
    """Raises ValueError in every process unless all of them see the files process 0 writes in
    ``directory`` (created by process 0 if missing)."""
    if jax.process_count() == 1:
        return
    token = int(multihost_utils.broadcast_one_to_all(np.int32(random.getrandbits(31))))
    marker = directory / f".lfjax-shared-check-{token}"
    if is_leader():
        directory.mkdir(parents=True, exist_ok=True)
        marker.touch()
    barrier(f"lfjax-shared-check-written-{token}")
    sees = _gather(np.array([marker.exists()], np.int32))[:, 0]
    barrier(f"lfjax-shared-check-read-{token}")
    if is_leader():
        marker.unlink(missing_ok=True)
    blind = np.flatnonzero(sees == 0)
    if blind.size:
        raise ValueError(
            f"{flag}={directory} is not shared: process(es) {blind.tolist()} do not see what "
            f"process 0 writes there. Every process writes its part of the checkpoints into "
            f"it: put {flag} on a filesystem all hosts mount (NFS, GCS FUSE, ...)"
        )


def leave_after_lost_contact(error: BaseException, next_step: str) -> NoReturn:
    """Ends this process after a collective failed because another process died or the network
    dropped: one line with the cause and ``next_step`` (what is saved, how to go on), exit
    status 1.

    Leaves with os._exit: jax.distributed's exit handler would otherwise wait for the dead
    process at a shutdown barrier until the heartbeat times out, then abort with a core dump.
    Nothing is left to save by then: checkpoints and result files are written synchronously.
    """
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    sys.stdout.flush()
    print(
        f"error: lost contact with another process of the job ({reason}). {next_step}",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)
