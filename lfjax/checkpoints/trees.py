"""Pytrees and JSON on disk: orbax pytree checkpoints that refuse partial or mismatched
restores, and JSON files written atomically.

Orbax commits a checkpoint by renaming a finished temporary directory, so a run killed
mid-save leaves either the previous checkpoint or a stray temporary, never a half-written
one under the final name.
"""

import json
import logging
import os
import pathlib
import sys
import tempfile
import traceback
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from lfjax.checkpoints.space import tree_bytes, writing

PyTree = Any


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or not what the caller expects."""


class UnreadableCheckpointError(CheckpointError):
    """A checkpoint whose files cannot be read back (truncated, corrupt): unlike one of another
    structure, an older checkpoint of the same run may still be intact.

    Attributes:
        directory: the checkpoint that failed.
        reason: why, in a few words (the reader's own message, shortened).
    """

    def __init__(self, message: str, directory: pathlib.Path, reason: str):
        super().__init__(message)
        self.directory = directory
        self.reason = reason


def _short(e: BaseException, limit: int = 200) -> str:
    """``Type: message``, at most ``limit`` characters, on one line."""
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _checkpointer() -> ocp.StandardCheckpointer:
    return ocp.StandardCheckpointer()


def save_tree(directory: str | os.PathLike, tree: PyTree) -> None:
    """Saves a pytree of arrays under ``directory`` (replaced if it exists), blocking."""
    directory = pathlib.Path(directory).absolute()
    checkpointer = _checkpointer()
    with writing(directory, tree_bytes(tree)):  # a full disk: DiskFullError
        checkpointer.save(directory, tree, force=True)
        checkpointer.wait_until_finished()


def _describe(leaf) -> tuple[tuple[int, ...], str]:
    return tuple(leaf.shape), np.dtype(leaf.dtype).name


def _key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _leaves_by_name(tree: PyTree) -> dict[str, Any]:
    """Leaves keyed by a path like "actor_opt_state/0/mu/params": orbax's metadata turns
    dataclasses and tuples into dicts and lists, so attribute, dict and index keys are
    compared by name only."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"/".join(_key_name(k) for k in path): leaf for path, leaf in flat}


def restore_tree(directory: str | os.PathLike, like: PyTree) -> PyTree:
    """Restores the pytree saved under ``directory``, checked against ``like``.

    ``like`` is a pytree of arrays or ``jax.ShapeDtypeStruct`` (``jax.eval_shape`` of an
    init function gives one for free); the restored arrays get its leaves' shardings. The
    stored tree must have exactly its structure, shapes and dtypes; anything else raises
    :class:`CheckpointError` naming the first difference, instead of restoring part of it.
    """
    directory = pathlib.Path(directory).absolute()
    if not directory.is_dir():
        raise CheckpointError(f"no checkpoint at {directory}")
    checkpointer = _checkpointer()
    try:
        stored = checkpointer.metadata(directory).item_metadata.tree
    except Exception as e:  # orbax raises many types for unreadable directories
        raise UnreadableCheckpointError(
            f"{directory} is not a readable checkpoint ({_short(e)}); "
            "it may be truncated or corrupt: delete it and rerun", directory, _short(e)
        ) from e
    stored_by_name = _leaves_by_name(stored)
    expected_by_name = _leaves_by_name(like)
    missing = sorted(set(expected_by_name) - set(stored_by_name))
    extra = sorted(set(stored_by_name) - set(expected_by_name))
    if missing or extra:
        raise CheckpointError(
            f"checkpoint {directory} does not match the expected structure "
            f"(missing {missing[:3]}, unexpected {extra[:3]}): it was written by a different "
            "configuration or version"
        )
    for name, leaf in expected_by_name.items():
        if _describe(stored_by_name[name]) != _describe(leaf):
            raise CheckpointError(
                f"checkpoint {directory}: {name} is stored as {_describe(stored_by_name[name])}, "
                f"expected {_describe(leaf)} (shape, dtype): it was written by a different "
                "configuration"
            )
    # Each leaf comes back placed like its counterpart in ``like`` (split over the seed mesh,
    # across processes too); leaves without a sharding come back as host arrays.
    target = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        like,
    )
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _without_orbax_noise(previous_hook)
    try:
        restored = checkpointer.restore(directory, target)
    except Exception as e:
        # The hook stays: the failed restore's other reads are finalized later (at exit, often),
        # and each would print a traceback around the one error line the user should read.
        raise UnreadableCheckpointError(
            f"could not read checkpoint {directory} ({_short(e)}); "
            "it may be truncated or corrupt: delete it and rerun", directory, _short(e)
        ) from e
    sys.unraisablehook = previous_hook
    return restored


def _without_orbax_noise(hook):
    """``hook``, except for the exceptions of a failed orbax restore or save that nothing can
    catch.

    When one array of a restore (or a save, on a full disk) fails, orbax's other reads or
    writes of it fail too, in coroutines nobody awaits any more, and TensorStore's threads
    finish them by calling into an event loop orbax has closed. Python reports each through
    ``sys.unraisablehook`` as a bare traceback, often around (even before) the one line that
    says what failed.
    """
    if getattr(hook, "lfjax_orbax_filter", False):
        return hook

    def filtered(unraisable):
        frames = [frame.f_code.co_filename for frame, _ in traceback.walk_tb(unraisable.exc_traceback)]
        in_orbax = any(f"{os.sep}orbax{os.sep}" in f for f in frames)
        closed_loop = (isinstance(unraisable.exc_value, RuntimeError)
                       and str(unraisable.exc_value) == "Event loop is closed"
                       and any(f"{os.sep}asyncio{os.sep}" in f for f in frames))
        if not (in_orbax or closed_loop):
            hook(unraisable)

    filtered.lfjax_orbax_filter = True
    return filtered


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes JSON atomically: a reader sees the old file or the new one, never a part."""
    path = pathlib.Path(path)
    text = json.dumps(obj, indent=2, sort_keys=False)
    with writing(path, len(text)):  # a full disk: DiskFullError, the old file intact
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from the rest of a group
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            pathlib.Path(tmp).unlink(missing_ok=True)
            raise


def read_json(path: str | os.PathLike) -> Any:
    """Reads a JSON file written by :func:`write_json`, with a clear error if it is damaged."""
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is corrupt ({e}); delete it and rerun") from e


def as_json(x: Any) -> Any:
    """x round-tripped through JSON types (tuples become lists, ...), so that a value read back
    from a JSON file and a fresh one compare equal."""
    return json.loads(json.dumps(x))


def quiet_orbax() -> None:
    """Orbax logs every save and restore at INFO through absl; keep the terminal readable.

    Also drops what orbax says about its own failures: a save or restore that fails raises in
    the caller (which reports it in one line: lfjax's errors name the directory and the fix),
    while orbax's background threads log the same failure, traceback and all, once per thread
    (four tracebacks for one full disk), and the pending reads and writes it abandons print
    more through ``sys.unraisablehook``. For the command-line entry points, not the library."""
    from absl import logging as absl_logging

    # ERROR: orbax also warns that a composite item has no metadata file of its own.
    absl_logging.set_verbosity(absl_logging.ERROR)
    absl = logging.getLogger("absl")
    absl.setLevel(logging.ERROR)
    if not any(isinstance(f, _NotOrbax) for f in absl.filters):
        absl.addFilter(_NotOrbax())
    sys.unraisablehook = _without_orbax_noise(sys.unraisablehook)


class _NotOrbax(logging.Filter):
    """Lets through every record except orbax's own (below CRITICAL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.levelno >= logging.CRITICAL
                or f"{os.sep}orbax{os.sep}" not in (record.pathname or ""))
