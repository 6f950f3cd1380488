"""A full disk while lfjax writes: recognized however it surfaces, and turned into one
`DiskFullError` that names what was being written and roughly how much it needed.

A full disk reaches Python in several forms: an ``OSError`` with errno ENOSPC (or EDQUOT, a
quota) from our own writes; from orbax, TensorStore's ``ValueError("RESOURCE_EXHAUSTED: ...
No space left on device [os_error_code='28']")`` raised in a background thread and re-raised
(sometimes wrapped, sometimes as the cause or context of another error) when the save is
awaited. `writing` wraps a write and converts every one of them:

    with writing(directory, tree_bytes(tree)):
        save(directory, tree)              # DiskFullError(directory, needed_bytes) if the disk fills

What is left behind is what orbax and `write_json` leave after any failed write: the previous
checkpoint and file intact, at most a temporary directory that nothing reads.
"""

import contextlib
import errno
import json
import os
import pathlib
from typing import Any, Iterator

import jax
import numpy as np

# How a full disk or quota reads in the messages of libraries that do not raise OSError
# (TensorStore: "... No space left on device [os_error_code='28']").
_FULL_TEXTS = ("No space left on device", "os_error_code='28'", "Disk quota exceeded",
               "os_error_code='122'")


class DiskFullError(OSError):
    """No space left (or the quota is exhausted) on the device being written to.

    Attributes:
        path: the directory or file that was being written.
        needed_bytes: roughly what the write needed in all (uncompressed arrays and text).
    """

    def __init__(self, path: str | os.PathLike, needed_bytes: int, quota: bool = False):
        what = "disk quota exceeded" if quota else "no space left on device"
        super().__init__(errno.EDQUOT if quota else errno.ENOSPC,
                         f"{what} writing {path} (the step needed {megabytes(needed_bytes)})")
        self.path = pathlib.Path(path)
        self.needed_bytes = needed_bytes

    def __str__(self) -> str:
        return self.strerror


def megabytes(n: int) -> str:
    """'about 12.3 MB', or 'under 0.1 MB'."""
    return "under 0.1 MB" if n < 100_000 else f"about {n / 1e6:.1f} MB"


def _chain(error: BaseException) -> Iterator[BaseException]:
    """error, its causes and contexts, and the members of exception groups, each once."""
    stack, seen = [error], set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]


def is_disk_full(error: BaseException) -> bool:
    """Whether error (or anything it wraps) says the disk or the quota is full."""
    for e in _chain(error):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(e) for text in _FULL_TEXTS):
            return True
    return False


def _is_quota(error: BaseException) -> bool:
    return any((isinstance(e, OSError) and e.errno == errno.EDQUOT)
               or "Disk quota exceeded" in str(e) or "os_error_code='122'" in str(e)
               for e in _chain(error))


def tree_bytes(tree: Any) -> int:
    """Bytes of a pytree's arrays (uncompressed: what a checkpoint of it writes, roughly);
    other leaves count as their JSON text."""
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            total += int(np.prod(leaf.shape, dtype=np.int64)) * np.dtype(leaf.dtype).itemsize
        else:
            total += len(json.dumps(leaf, default=str))
    return total


@contextlib.contextmanager
def writing(path: str | os.PathLike, needed_bytes: int) -> Iterator[None]:
    """Runs the block; a full disk or quota in it, in whatever form, becomes DiskFullError."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as e:
        if is_disk_full(e):
            raise DiskFullError(path, needed_bytes, quota=_is_quota(e)) from e
        raise
