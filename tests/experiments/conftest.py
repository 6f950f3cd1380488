import os

import pytest

from lfjax.datagen import generate_dataset


@pytest.fixture(scope="session")
def minari_root(tmp_path_factory):
    """A Minari data path holding a 4,000-step maze2d-umaze dataset, generated once for all the
    command-line tests here (they pass it to their subprocesses as MINARI_DATASETS_PATH)."""
    root = tmp_path_factory.mktemp("minari_cli")
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        generate_dataset("maze2d-umaze", num_steps=4000, seed=0, ref_episodes=3, progress=False)
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
    return root
