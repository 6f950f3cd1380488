"""The README's code runs as written."""

import doctest
import pathlib

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_flow_example():
    text = README.read_text()
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, "README.md", str(README), 0)
    assert len(test.examples) >= 8
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test)
    assert result.failed == 0


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
