"""What `pip install lfjax` promises: the core library imports none of the extras' packages,
and constraints.txt (the lock CI installs) pins every dependency within pyproject.toml's ranges."""

import json
import os
import pathlib
import subprocess
import sys
import tomllib

from packaging.markers import Marker
from packaging.requirements import Requirement

REPO = pathlib.Path(__file__).resolve().parents[1]
# Packages of the extras (import names). absl is not among them: chex, optax and distrax (core)
# import absl.logging themselves. orbax is not imported by the core either, although flax
# installs it (flax requires orbax-checkpoint).
EXTRA_MODULES = ("gymnasium", "gymnasium_robotics", "mujoco", "minari", "h5py", "matplotlib",
                 "tqdm", "orbax", "tensorboardX", "wandb")


def imported_in_fresh_interpreter(code: str) -> set[str]:
    """Top-level names of the modules a new interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_core_imports_no_extra():
    modules = imported_in_fresh_interpreter(
        "import lfjax.flows, lfjax.pretraining, lfjax.agent, lfjax.configs")
    assert "lfjax" in modules and "distrax" in modules
    assert not modules & set(EXTRA_MODULES), sorted(modules & set(EXTRA_MODULES))


def test_run_without_tracking_imports_no_tracker():
    """experiments.run imports neither tracker's package unless --log_dir or --wandb asks."""
    modules = imported_in_fresh_interpreter(
        "import pathlib\n"
        "import experiments.run\n"
        "from experiments import tracking\n"
        "tracker = tracking.open_tracker(log_dir=None, use_wandb=False, workdir=pathlib.Path('w'), config={})\n"
        "tracker.report({'config': {'seeds': [0]}, 'curve': []})\n"
        "tracker.close()")
    assert "experiments" in modules
    assert not modules & {"tensorboardX", "tensorboard", "wandb"}


def pins() -> dict[str, list[tuple[str, Marker | None]]]:
    """constraints.txt as {normalized name: [(version, marker)]}."""
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            out.setdefault(req.name.lower().replace("_", "-"), []).append((spec.version, req.marker))
    return out


def test_lock_pins_every_dependency_within_its_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += [Requirement(r) for r in extra if not r.startswith("lfjax[")]
    locked = pins()
    for python in ("3.11", "3.12", "3.13"):
        for req in requirements:
            versions = [v for v, marker in locked.get(req.name.lower().replace("_", "-"), [])
                        if marker is None or marker.evaluate({"python_version": python})]
            assert len(versions) == 1, f"{req.name} on Python {python}: {versions}"
            assert req.specifier.contains(versions[0], prereleases=True), (req, versions[0])
    # The nightly distrax needs, which pyproject cannot pin (distrax asks for it unversioned).
    assert locked["tfp-nightly"][0][0].startswith("0.26.0.dev")
