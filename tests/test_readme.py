"""The README's examples and commands, as a new user meets them.

Every Python block of README.md that is a script (it holds ``if __name__ ==
"__main__":``) is run as a script, ``python example.py`` in a fresh process, with
its sizes scaled down by :data:`SMALLER`: the README's own code, not a copy.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest

import daskfuse

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
GUARD = 'if __name__ == "__main__":'

#: the README's sizes and the smaller ones its scripts run with here (each must occur)
SMALLER = {"2_000_000": "20_000", "250_000": "2_500"}

SCRIPT_TIMEOUT = 120


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def docstring_examples():
    """The ``>>>`` examples of every docstring in the daskfuse package, by module."""
    for path in sorted(pathlib.Path(daskfuse.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
                doc = ast.get_docstring(node) or ""
                if ">>>" in doc:
                    yield path.name, doc


SCRIPTS = [block for block in python_blocks(README) if GUARD in block]


def test_the_readme_has_a_script_example():
    assert len(SCRIPTS) >= 1
    assert "LocalCluster(" in SCRIPTS[0]


def test_every_example_that_starts_a_local_cluster_is_a_guarded_script():
    # a script that starts a LocalCluster without the guard dies with "An attempt has
    # been made to start a new process before the current process has finished its
    # bootstrapping phase" (the workers are spawned processes that import it)
    examples = [("README.md", block) for block in python_blocks(README)]
    examples += list(docstring_examples())
    starting = [(where, code) for where, code in examples if "LocalCluster(" in code]
    assert starting, "no example starts a LocalCluster"
    for where, code in starting:
        said = "notebook" in code and "REPL" in code
        assert GUARD in code and said, f"{where}: unguarded LocalCluster example:\n{code}"
        guarded = code[code.index(GUARD) :]
        assert "LocalCluster(" in guarded, f"{where}: LocalCluster started before the guard"


@pytest.mark.parametrize("index", range(len(SCRIPTS)))
def test_readme_script_runs_as_a_script(index, tmp_path):
    code = SCRIPTS[index]
    for big, small in SMALLER.items():
        if index == 0:
            assert big in code, f"README's first script no longer holds {big}: update SMALLER"
        code = code.replace(big, small)
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bootstrapping phase" not in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if index == 0:
        assert "SGDClassifier(" in proc.stdout
        assert "dask.array<" in proc.stdout
        assert "partition" in proc.stdout and "[8 rows x" in proc.stdout


# ------------------------------------------------------------------ notebooks, CI
def requirement_names(specs):
    return {re.match(r"[A-Za-z0-9_.-]+", spec)[0].lower().replace("_", "-") for spec in specs}


def notebook_imports():
    """The top-level modules that the notebooks' code cells import."""
    modules = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            lines = source.splitlines()
            source = "\n".join(x for x in lines if not x.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules.add(node.module.split(".")[0])
    return modules


def test_the_notebooks_extra_installs_what_the_notebooks_import():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = requirement_names(project["dependencies"])
    extra = requirement_names(project["optional-dependencies"]["notebooks"])
    assert 'pip install -e ".[notebooks]" && jupyter lab notebooks/' in README
    # to open them (JupyterLab) and what they use besides their imports: parquet files
    # (pyarrow) and the dashboard link (bokeh)
    assert {"jupyterlab", "pyarrow", "bokeh"} <= extra
    distributions = importlib.metadata.packages_distributions()
    imported = notebook_imports() - set(sys.stdlib_module_names) - {"daskfuse"}
    assert {"sklearn", "dask_jobqueue"} <= imported
    for module in sorted(imported):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        assert names & (core | extra), f"the notebooks import {module}: not in .[notebooks]"


def test_readme_says_what_ci_adds_to_its_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line.strip() for line in ci.splitlines() if line.strip() and line[0] != "#"]
    readme_tests = re.search(r"^Run the tests \((.*)\):\n\n```bash\n(.*)\n```", README, re.M)
    assert readme_tests, "README's test command"
    said, command = readme_tests[1], readme_tests[2]
    assert "`ruff check .` (lint)" in said and "this same command" in said
    assert 'pip install -q -e ".[test]"' in ci and 'pip install -e ".[test]"' in command
    assert commands[-2:] == ["ruff check .", command.rsplit("&& ", 1)[-1]]
