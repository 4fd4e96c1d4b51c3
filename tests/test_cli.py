"""The ``daskfuse`` command line, run as a real subprocess (``python -m daskfuse``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from daskfuse.cli import main

DEMO_TIMEOUT = 240


def run_cli(*args, timeout=DEMO_TIMEOUT, env=None):
    """``python -m daskfuse ARGS`` with stdout a pipe (not a terminal), as in CI."""
    return subprocess.run(
        [sys.executable, "-m", "daskfuse", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        # wide enough that no table row wraps, whatever the terminal of the test run
        env={**os.environ, "COLUMNS": "120", **(env or {})},
    )


def table_row(stdout, label):
    """The cells of the table row whose first cell starts with ``label``."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line)]
        cells = [c for c in cells if c]
        if cells and cells[0].startswith(label):
            return cells
    raise AssertionError(f"no table row {label!r} in:\n{stdout}")


@pytest.fixture(scope="module")
def demo_run():
    return run_cli(
        "demo", "--rows", "20000", "--partitions", "4", "--workers", "1", "--no-progress"
    )


def test_demo_runs(demo_run):
    assert demo_run.returncode == 0, demo_run.stderr
    assert "Traceback" not in demo_run.stderr


def test_demo_prints_the_dashboard_line(demo_run):
    out = demo_run.stdout
    link = re.search(r"^Dashboard: (http://\S+) \(.*\)$", out, re.MULTILINE)
    missing = re.search(r"^Dashboard: not available .*\n.*daskfuse\[dashboard\]", out, re.MULTILINE)
    assert link or missing, out


def test_demo_table_compares_sklearn_and_fused(demo_run):
    out = demo_run.stdout
    single = table_row(out, "scikit-learn (1 process)")
    fused = table_row(out, "daskfuse (4 partitions, fusion=")
    for cells in (single, fused):
        seconds, accuracy, speedup = cells[1:4]
        assert float(seconds) > 0
        assert 0.8 <= float(accuracy) <= 1.0
        assert float(speedup.rstrip("x")) > 0
    assert single[3] == "1.00x"


def test_demo_prints_the_partition_report(demo_run):
    out = demo_run.stdout
    assert "Partition report (4 partitions)" in out
    for partition in range(4):
        cells = table_row(out, str(partition))
        assert cells[1] == "5,000"


def test_demo_without_bokeh_explains_how_to_get_the_dashboard(tmp_path):
    # a real environment without bokeh: a package named bokeh that cannot be imported
    # shadows the installed one, in this process and in the worker processes
    (tmp_path / "bokeh").mkdir()
    (tmp_path / "bokeh" / "__init__.py").write_text("raise ImportError('No module named bokeh')\n")
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    proc = run_cli(
        "demo",
        "--rows",
        "2000",
        "--partitions",
        "2",
        "--workers",
        "1",
        "--no-progress",
        "--keep",  # nothing to keep open: it says so and ends
        env={"PYTHONPATH": pythonpath},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Dashboard: not available" in proc.stdout
    assert 'pip install "daskfuse[dashboard]"' in proc.stdout
    assert "http://" not in proc.stdout
    table_row(proc.stdout, "daskfuse (2 partitions")
    assert "--keep: no dashboard to keep open; closing the cluster" in proc.stdout


def test_demo_progress_is_off_when_stdout_is_not_a_terminal():
    proc = run_cli("demo", "--rows", "2000", "--partitions", "2", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "no progress bar: stdout is not a terminal" in proc.stdout
    assert "\r" not in proc.stdout


def test_demo_rejects_fewer_rows_than_partitions_in_one_line():
    proc = run_cli("demo", "--rows", "3", "--partitions", "8", timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("daskfuse demo: error: --rows (3)")
    assert "--partitions (8)" in lines[0]
    assert proc.stdout == ""


def test_demo_rejects_too_small_partitions_in_one_line(capsys):
    assert main(["demo", "--rows", "100", "--partitions", "8"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("daskfuse demo: error: --rows (100)")
    assert "--partitions (8)" in lines[0] and "400 rows" in lines[0]
    assert captured.out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--rows", "0"], "argument --rows: expected a positive integer"),
        (["demo", "--workers", "many"], "argument --workers: expected a positive integer"),
        (["demo", "--estimator", "forest"], "argument --estimator: invalid choice"),
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_bad_arguments_are_usage_errors(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("daskfuse") and ": error: " in last
    assert message in last


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "required" in capsys.readouterr().err


def test_help_lists_demo(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out


def test_demo_help_lists_its_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--rows",
        "--features",
        "--partitions",
        "--workers",
        "--threads-per-worker",
        "--estimator",
        "--seed",
        "--no-progress",
    ):
        assert option in out


def test_python_m_daskfuse_help():
    proc = run_cli("--help", timeout=60)
    assert proc.returncode == 0
    assert "demo" in proc.stdout


def test_the_demo_lives_in_daskfuse_demo_and_cli_re_exports_it():
    from daskfuse import cli, demo

    for name in ("run_demo", "make_classification_data"):
        assert getattr(cli, name) is getattr(demo, name)
    assert cli.run_demo.__module__ == "daskfuse.demo"
    assert {"run_demo", "make_classification_data"} <= set(cli.__all__)


@pytest.mark.parametrize(
    "first",
    ["import daskfuse.demo", "from daskfuse.cli import run_demo", "from daskfuse.cli import *"],
)
def test_cli_and_demo_import_in_either_order(first):
    # cli imports the demo; the demo and cli share daskfuse._console (no import cycle)
    code = (
        f"{first}\n"
        "import daskfuse.cli, daskfuse.demo\n"
        "assert daskfuse.cli.run_demo is daskfuse.demo.run_demo\n"
        "print(sorted(daskfuse.demo.__all__))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['make_classification_data', 'run_demo']"


# ------------------------------------------------------------------ issue 17: first hour
def test_demo_says_how_long_the_dashboard_stays_open(demo_run):
    line = re.search(r"^Dashboard: http://\S+ \((.*)\)$", demo_run.stdout, re.MULTILINE)
    assert line, demo_run.stdout
    assert "open while the demo runs" in line[1]
    assert "daskfuse demo --keep keeps it open until Ctrl-C" in line[1]


def test_demo_prints_cores_and_load_next_to_the_speed_up(demo_run):
    out = demo_run.stdout
    speedup = table_row(out, "daskfuse (4 partitions")[3]
    note = re.search(
        r"^Speed-up (\S+) on this machine: (\d+) cores?, load average "
        r"(\d+\.\d\d), (\d+\.\d\d), (\d+\.\d\d) \(1, 5, 15 min\)\.$",
        out,
        re.MULTILINE,
    )
    assert note, out
    assert note[1] == speedup
    assert int(note[2]) == os.cpu_count()
    text = " ".join(out.split())
    assert "It is scikit-learn's fit seconds over daskfuse's on the same data." in text
    assert "expect more with more cores (more workers)" in text
    assert "data larger than one process's memory" in text


def test_demo_keep_waits_for_ctrl_c_and_prints_the_link_again():
    proc = subprocess.Popen(
        [sys.executable, "-m", "daskfuse", "demo", "--rows", "2000", "--partitions", "1"]
        + ["--workers", "1", "--no-progress", "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "kept open; press Ctrl-C" in line:
                break
        kept = lines[-1]
        first = lines[0] if lines[0].startswith("Dashboard:") else lines[1]
        link = re.search(r"http://\S+", first)[0]
        assert kept.startswith(f"Dashboard: {link} (kept open; press Ctrl-C")
        assert "open until you press Ctrl-C after the tables" in first
        assert "Partition report (1 partition)" in "".join(lines)  # not "1 partitions"
        assert "on 1 partition ..." in "".join(lines)
        assert proc.poll() is None  # still waiting, cluster open
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "Closing the cluster" in out


def test_demo_help_gives_no_default_for_the_progress_flag(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    flag = out[out.rindex("--no-progress") : out.index("exit status:")]  # its help
    assert "default" not in flag.replace("shown when stdout is a terminal", "")
    assert "True" not in flag
    assert "--rows ROWS training rows (default: 2000000)" in out  # other defaults stay


def test_progress_bar_counts_the_tasks_to_run_not_the_finished_inputs(on_cluster, capsys):
    from distributed import wait
    from sklearn.linear_model import SGDClassifier

    from daskfuse import FusedClassifier
    from daskfuse.demo import make_classification_data

    # the demo's data, persisted as the demo does: the input blocks are in memory
    data = on_cluster.persist(list(make_classification_data(8_000, 10, 4)))
    wait(data)
    slow = SGDClassifier(max_iter=300, tol=None, random_state=0)  # fits of ~0.2 s
    FusedClassifier(slow, fusion="weighted", verbose=1).fit(data[0], data[1])
    drawn = [int(p) for p in re.findall(r"\| (\d+)% Completed", capsys.readouterr().out)]
    assert drawn, "no progress bar drawn"
    assert drawn[0] == 0, drawn  # was 80%: the persisted blocks counted as done
    assert drawn[-1] == 100
