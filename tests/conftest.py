import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def session_minari_root(tmp_path_factory):
    """No test ever reads or writes the user's Minari datasets: the session's temporary
    Minari data path."""
    root = tmp_path_factory.mktemp("minari_session")
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("MINARI_DATASETS_PATH", None)
    else:
        os.environ["MINARI_DATASETS_PATH"] = previous
