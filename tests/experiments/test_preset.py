"""--preset's default, auto: the CPU preset when JAX sees no accelerator, the paper protocol when
it sees one, and the preset of a run already there. JAX's device list is stubbed; the commands'
own first lines on this CPU are checked end to end in test_run.py and test_table.py."""

import dataclasses

import jax
import pytest

from experiments import cli


@dataclasses.dataclass
class FakeDevice:
    platform: str


def sees(monkeypatch, *platforms):
    monkeypatch.setattr(jax, "devices", lambda *args, **kwargs: [FakeDevice(p) for p in platforms])


def test_only_cpus_choose_the_quick_preset_and_name_the_paper_flag(monkeypatch):
    sees(monkeypatch, "cpu", "cpu")
    choice = cli.choose_preset("auto")
    assert choice.name == "quick"
    assert choice.record() == {"name": "quick", "chosen": "auto: JAX sees no accelerator, only cpu"}
    assert choice.line == (
        "preset: quick (JAX sees no accelerator, only cpu; the paper protocol, 1,000,000 updates "
        "per seed, is --preset=paper, ~10 h per seed on a 2-core CPU)")


@pytest.mark.parametrize("platform", ["gpu", "tpu"])
def test_an_accelerator_chooses_the_paper_protocol_and_names_the_quick_flag(monkeypatch, platform):
    sees(monkeypatch, platform, platform)
    choice = cli.choose_preset("auto")
    assert choice.record() == {"name": "paper", "chosen": f"auto: JAX sees 2 {platform} device(s)"}
    assert choice.line == (f"preset: paper (JAX sees 2 {platform} device(s); --preset=quick for the "
                           "minutes-long CPU preset)")


@pytest.mark.parametrize("given", ["paper", "quick"])
def test_a_given_preset_is_taken_whatever_the_devices(monkeypatch, given):
    sees(monkeypatch, "gpu")
    choice = cli.choose_preset(given, made_with=lambda name: "the run in runs/w was made with it")
    assert choice.record() == {"name": given, "chosen": "given"}
    other = "quick" if given == "paper" else "paper"
    assert choice.line.startswith(f"preset: {given} (given by --preset; --preset={other} for ")


def test_a_run_made_with_quick_resumes_with_quick_on_a_gpu(monkeypatch):
    """A run made on a CPU with auto (quick) and resumed on a machine with a GPU keeps its
    configuration instead of being refused as another one."""
    sees(monkeypatch, "gpu")
    choice = cli.choose_preset(
        "auto", made_with=lambda name: "the run in runs/w was made with it" if name == "quick" else None)
    assert choice.record() == {"name": "quick", "chosen": "auto: the run in runs/w was made with it"}
    assert choice.line.startswith("preset: quick (the run in runs/w was made with it; --preset=paper "
                                  "with another --workdir for the paper protocol")
    sees(monkeypatch, "cpu")
    assert cli.choose_preset("auto", made_with=lambda name: None).name == "quick"
