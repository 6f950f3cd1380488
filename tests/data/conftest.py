import pytest

from lfjax.data import generate_dataset

SMALL_STEPS = 3_000
SMALL_REF_EPISODES = 3


@pytest.fixture(scope="session")
def minari_root(session_minari_root):
    """The Minari data path the tests/data datasets are generated into."""
    return session_minari_root


@pytest.fixture(scope="session")
def small_umaze(minari_root):
    """A 3,000-step maze2d-umaze dataset generated once per session; returns its Minari id."""
    return generate_dataset(
        "maze2d-umaze", num_steps=SMALL_STEPS, seed=0, ref_episodes=SMALL_REF_EPISODES,
        progress=False,
    )


@pytest.fixture
def empty_minari_root(tmp_path, monkeypatch):
    """A fresh, empty Minari data path for one test."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    return tmp_path
