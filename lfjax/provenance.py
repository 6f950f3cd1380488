"""What made an artefact: the versions of the packages involved, recorded in every dataset,
flow and results file so that a figure can be traced to the code that produced it."""

import importlib.metadata

# The packages a run's results depend on (results.json records them).
RUN_PACKAGES = (
    "lfjax", "jax", "jaxlib", "flax", "optax", "distrax", "chex", "orbax-checkpoint", "minari",
    "gymnasium", "gymnasium-robotics", "mujoco", "numpy",
)


def package_versions(*names: str) -> dict[str, str]:
    """{name: installed version, or "not installed"} for each distribution name, in order."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
