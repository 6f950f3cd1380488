"""The multi-process job (lfjax.processes) in one process: everything is a plain call.
tests/experiments/test_multihost.py runs real two-process jobs."""

import pytest

from lfjax import processes


def test_distributed_is_opt_in(monkeypatch):
    monkeypatch.delenv("LFJAX_DISTRIBUTED", raising=False)
    assert processes.maybe_initialize_distributed() is False
    assert processes.maybe_initialize_distributed(False) is False


def test_a_one_process_job_is_plain_calls(tmp_path):
    assert processes.is_leader()
    assert processes.together(lambda: 7, (ValueError,)) == 7
    with pytest.raises(ValueError, match="mine"):
        processes.together(lambda: (_ for _ in ()).throw(ValueError("mine")), (ValueError,))
    processes.check_same("anything", b"x", "no fix needed")
    processes.check_shared_directory(tmp_path / "absent", "--workdir")
    assert not (tmp_path / "absent").exists()  # nothing to check, nothing created
    assert processes.broadcast_from_leader({"a": 1}) == {"a": 1}
