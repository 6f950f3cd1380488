import importlib.util
import os
import pathlib
import shutil
import tempfile
import warnings

import jax
import pytest

# One JAX compilation cache for the whole test session, used by every subprocess the tests
# start (experiments.run and the other entry points; they inherit the environment): dozens of
# tests start the same tiny programs, and each process compiling them afresh was about a third
# of the command-line tests' time (tests/experiments/test_run.py: 239 s -> 142-173 s). Most of
# those programs compile in under JAX's default 1 s threshold, hence 0 (0.1 s kept 19 entries
# and lost the gain). A size limit turns on JAX's file lock around every read and write (the
# `filelock` package, in the test extra); without it a process can read an entry another is
# still writing, warn on stderr and compile anew. The lock's price is a scan of the whole cache
# at every write, so the pytest processes themselves do not share that cache: their thousands of
# small in-process programs (1,441 entries for tests/flows and tests/agent alone) made that scan
# cost more than the cache saved. Each pytest process (each xdist worker) has a cache of its own
# instead, in a directory no other process reads: no size limit, so no lock and no scan, and only
# programs that took JAX's default 1 s to compile: the pretrainings and agent chunks that a test
# file runs several times alike (tests/test_pretraining.py: 240 -> 168 s of CPU, tests/flows:
# 101 -> 86 s; BUILD_NOTES.md, "CI under 25 minutes").
# Set at import, before anything compiles; the process that creates the directory (the
# controller under xdist) removes it, with every process's own, at the end. A cached executable
# is the compiled one: results are bit-identical.
_CACHE_ENV = "LFJAX_TESTS_JAX_CACHE"
_OWN_CACHE = _CACHE_ENV not in os.environ
if _OWN_CACHE:
    os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="lfjax-tests-jax-cache-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(os.environ[_CACHE_ENV], "subprocesses")
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
if importlib.util.find_spec("filelock") is not None:  # JAX refuses a size limit without it
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(4 << 30)  # bytes: never reached
# This process only (the environment above is for the subprocesses):
jax.config.update("jax_compilation_cache_dir",
                  tempfile.mkdtemp(prefix=f"pytest-{os.getpid()}-", dir=os.environ[_CACHE_ENV]))
jax.config.update("jax_compilation_cache_max_size", -1)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(os.environ.pop(_CACHE_ENV), ignore_errors=True)


# The small maze2d-umaze dataset that the data, datagen and envs tests share.
SMALL_STEPS = 3_000
SMALL_REF_EPISODES = 3


# The session's Minari data path once session_minari_root has made it, and the last test that ran.
_SESSION_ROOT: list[str] = []
_LAST_TEST: list[str] = ["(none yet)"]


@pytest.fixture(scope="session", autouse=True)
def session_minari_root(tmp_path_factory):
    """No test ever reads or writes the user's Minari datasets: the session's temporary
    Minari data path."""
    root = tmp_path_factory.mktemp("minari_session")
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    _SESSION_ROOT.append(str(root))
    yield root
    if previous is None:
        os.environ.pop("MINARI_DATASETS_PATH", None)
    else:
        os.environ["MINARI_DATASETS_PATH"] = previous


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before any fixture of the test is set up: MINARI_DATASETS_PATH must name the session's
    data path or a directory under pytest's base temporary directory (a module's own, e.g.
    tests/datagen/test_locomotion.py). A CI run (2026-12-06) found it naming a directory outside
    both (/tmp/tmp<8 letters>, a dataset already in it) when tests/stages/test_flow.py first
    asked for the session dataset in its worker: the README's Python example (run by
    tests/test_readme.py) sets it, and nothing put it back. That test restores it now; this
    check stays for the next such leak: put back, with a warning naming the test that ran
    before, so that a run says where to look instead of failing a test that did nothing wrong."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    if _SESSION_ROOT and root is not None:
        base = item.config._tmp_path_factory.getbasetemp()
        if not pathlib.Path(root).resolve().is_relative_to(base.resolve()):
            os.environ["MINARI_DATASETS_PATH"] = _SESSION_ROOT[0]
            warnings.warn(pytest.PytestWarning(
                f"MINARI_DATASETS_PATH was {root!r} before {item.nodeid} (the test before it in "
                f"this process: {_LAST_TEST[0]}); put back to the session's {_SESSION_ROOT[0]}"))


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    _LAST_TEST[0] = item.nodeid


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
