"""A full disk is recognized however it surfaces and becomes one DiskFullError naming what was
being written and about how much it needed (lfjax/checkpoints/space.py); the end to end runs
are in tests/experiments/test_reliability.py."""

import errno
import json
import os

import numpy as np
import pytest

from lfjax.checkpoints import DiskFullError, is_disk_full, tree_bytes, write_json, writing

TENSORSTORE = ValueError(
    'RESOURCE_EXHAUSTED: Error writing "a/0.0" in OCDBT database at local file "/x/": Failed '
    "to write 2551211 bytes to file 4: No space left on device [os_error_code='28']"
)


def _raised_from(error, cause):
    try:
        raise error from cause
    except type(error) as e:
        return e


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    TENSORSTORE,
    _raised_from(RuntimeError("save failed"), OSError(errno.ENOSPC, "No space left on device")),
    ExceptionGroup("background saves", [KeyError("x"), TENSORSTORE]),
], ids=["ENOSPC", "EDQUOT", "tensorstore", "cause", "group"])
def test_every_form_of_a_full_disk_is_recognized(error):
    assert is_disk_full(error)


@pytest.mark.parametrize("error", [OSError(errno.EACCES, "Permission denied"), ValueError("bad shape")])
def test_other_errors_are_not_a_full_disk(error):
    assert not is_disk_full(error)


def test_writing_turns_a_full_disk_into_one_error_naming_the_path_and_the_size(tmp_path):
    tree = {"w": np.zeros((1000, 1000), np.float32), "b": np.zeros(10, np.float64)}
    assert tree_bytes(tree) == 4_000_080
    with pytest.raises(DiskFullError) as caught:
        with writing(tmp_path / "ckpt", tree_bytes(tree)):
            raise TENSORSTORE
    assert str(caught.value) == f"no space left on device writing {tmp_path / 'ckpt'} (the step needed about 4.0 MB)"
    assert caught.value.errno == errno.ENOSPC and caught.value.needed_bytes == 4_000_080
    with pytest.raises(KeyError):  # anything else passes through unchanged
        with writing(tmp_path, 1):
            raise KeyError("x")


def test_a_json_file_written_on_a_full_disk_keeps_its_old_content(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json(path, {"updates": 20})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match=r"writing .*results.json \(the step needed under 0.1 MB\)"):
        write_json(path, {"updates": 40})
    assert json.loads(path.read_text()) == {"updates": 20}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left
