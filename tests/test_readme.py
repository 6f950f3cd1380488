"""The README's code runs as written, and its commands name modules and flags that exist."""

import ast
import doctest
import pathlib
import re
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_readme_flow_example(monkeypatch, tmp_path):
    # The example points MINARI_DATASETS_PATH at a directory of its own, as a notebook would;
    # monkeypatch puts the session's value back afterwards. Without it the next test of this
    # worker that made the session dataset found the example's umaze there and failed (CI,
    # 2026-12-06).
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    text = README.read_text()
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, "README.md", str(README), 0)
    assert len(test.examples) >= 8
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test)
    assert result.failed == 0


def _defined_flags(module: str) -> set[str]:
    """The flags `python -m <module>` accepts: its own flags.DEFINE_* calls, experiments/
    shared_flags.py's when it calls shared_flags.define(), and absl's built-in ones."""
    path = ROOT / (module.replace(".", "/") + ".py")
    # absl's own, and its --log_dir, which experiments.run takes over for TensorBoard.
    names = {"help", "helpfull", "helpshort", "flagfile", "log_dir"}
    trees = [ast.parse(path.read_text())]
    if "shared_flags.define()" in path.read_text():
        trees.append(ast.parse((ROOT / "experiments" / "shared_flags.py").read_text()))
    for tree in trees:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr.startswith("DEFINE") and node.args
                    and isinstance(node.args[0], ast.Constant)):
                names.add(node.args[0].value)
    return names


def test_every_command_names_a_module_and_flags_that_exist():
    """Each `python -m experiments.X --flag ...` in the README (and the run's list of
    overridable flags) names a module that exists and flags it defines; `pip install -e
    ".[extra]"` names an extra of pyproject.toml."""
    module, checked = None, 0
    for line in README.read_text().splitlines():
        found = re.search(r"python -m (experiments\.\w+)", line)
        if found:
            module = found.group(1)
            assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), line
        elif not line.startswith("#   --"):  # the run's flag list continues its command
            continue
        defined = _defined_flags(module)
        for flag in re.findall(r"(?<![\w-])--(\w+)", line.split("python -m", 1)[-1]):
            assert flag in defined or (flag.startswith("no") and flag[2:] in defined), (module, flag)
            checked += 1
    assert checked >= 30
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in re.findall(r'pip install -e "\.\[(\w+)\]"', README.read_text()):
        assert extra in extras, extra


def test_quickstart_has_two_commands():
    text = README.read_text()
    quickstart = text.split("## Quickstart")[1].split("\n## ")[0]
    commands = [line for line in quickstart.splitlines() if line.startswith("python3.11 -m venv")]
    assert len(commands) == 2
    assert "Python 3.11, 3.12 or 3.13" in quickstart  # requires-python >=3.11; CI runs 3.11 and 3.13
    # The run needs the experiments extra; both install the lock file CI tests with.
    assert 'pip install -e ".[experiments]" -c constraints.txt' in commands[0]
    assert "experiments.run --env=maze2d-umaze" in commands[0]
    # .ci/run greps for this test line and runs it from `pip install` on.
    assert 'pip install -e ".[test]" -c constraints.txt' in commands[1] and "pytest" in commands[1]
