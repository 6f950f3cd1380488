import os

import pytest

# The small maze2d-umaze dataset that the data, datagen and envs tests share.
SMALL_STEPS = 3_000
SMALL_REF_EPISODES = 3


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


@pytest.fixture(scope="session")
def minari_root(session_minari_root):
    """The Minari data path the shared small datasets are generated into."""
    return session_minari_root


@pytest.fixture(scope="session")
def small_umaze(minari_root):
    """A 3,000-step maze2d-umaze dataset generated once per session; returns its Minari id."""
    from lfjax.datagen import generate_dataset

    return generate_dataset(
        "maze2d-umaze", num_steps=SMALL_STEPS, seed=0, ref_episodes=SMALL_REF_EPISODES,
        progress=False,
    )


@pytest.fixture
def empty_minari_root(tmp_path, monkeypatch):
    """A fresh, empty Minari data path for one test."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    return tmp_path
