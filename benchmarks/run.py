"""Run the whole benchmark suite and write the summary of issue 5's targets.

::

    python benchmarks/run.py                    # every benchmarks/bench_*.py, full size
    python benchmarks/run.py --quick            # smoke run: every script with --quick
    python benchmarks/run.py --only linear exact
    python benchmarks/run.py --summary-only     # rebuild the summary from the JSON files

Every ``benchmarks/bench_*.py`` runs as its own subprocess (so each has its own
``LocalCluster`` and nothing leaks from one into the next) with ``--out
results/NAME.json`` (``NAME_quick.json`` with ``--quick``), where NAME is the
script's name without ``bench_``. Its output goes to the terminal and to
``results/logs/NAME.log``. A script that fails, times out (``--timeout``) or writes
no JSON is recorded as failed and the others go on.

Then ``results/summary.md`` and ``summary.json`` (``summary_quick.*``) are written:
one table of every target of issue 5 (and of issue 15's speed targets,
``bench_newton.py``, and issue 16's benchmark row, ``bench_tabular.py``) with the
measured figure, the target and met / missed, built from the ``"targets"`` rows each
script puts in its JSON (see ``_common.target``). Scripts not selected in this run
contribute their last JSON (its date is shown). A script that takes part must accept
``--quick`` and ``--out PATH`` and, to appear in the table, write ``"targets"``; a new
``bench_*.py`` is picked up without any change here.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common as common  # noqa: E402

#: the order scripts run in (any other bench_*.py runs after these, by name)
ORDER = ("linear", "exact", "kmeans", "svm", "overhead", "growth", "families", "scaling")
#: which of issue 5's targets each script measures (for the rows of a script that failed)
SCRIPT_TARGETS = {
    "linear": ["1"],
    "exact": ["2"],
    "kmeans": ["3"],
    "svm": ["4"],
    "overhead": ["5"],
    "growth": ["6"],
    "scaling": ["7"],
    "newton": ["15"],
    "tabular": ["16"],
    "families": ["17"],
}
#: targets of later issues, by number: the summary's titles next to issue 5's
LATER_TARGETS = {
    "15": "Issue 15: global-gradient LogisticRegression (fusion='newton')",
    "16": "Issue 16: mixed-type Pipeline (>= 1,000,000 rows) vs one process and dask-ml",
    "17": "Issue 17: partition task seconds / fit seconds",
}


def discover() -> dict[str, Path]:
    """``{name: path}`` of every ``bench_*.py`` next to this file, in running order."""
    found = {p.stem.removeprefix("bench_"): p for p in HERE.glob("bench_*.py")}
    ranked = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    return {n: found[n] for n in ranked}


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def run_script(
    name: str, path: Path, args: argparse.Namespace, out: Path, log: Path
) -> dict[str, Any]:
    """Run one script as a subprocess; its output is echoed and logged."""
    cmd = [args.python, str(path), "--out", str(out)]
    if args.quick:
        cmd.insert(2, "--quick")
    cmd += args.extra.get(name, [])
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
    t0 = time.time()
    status: dict[str, Any] = {"name": name, "command": cmd, "log": str(log)}
    tail: list[str] = []
    with log.open("w") as f:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group: a timeout ends it and its workers
        )
        timed_out = threading.Event()

        def stop() -> None:
            # the script's own process group: the script and the workers it started
            timed_out.set()
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)

        timer = None if args.timeout is None else threading.Timer(args.timeout, stop)
        if timer is not None:
            timer.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            f.write(line)
            tail = (tail + [line.rstrip()])[-20:]
        rc = proc.wait()
        if timer is not None:
            timer.cancel()
    status["seconds"] = time.time() - t0
    status["returncode"] = rc
    fresh = out.exists() and out.stat().st_mtime >= t0
    if timed_out.is_set():
        status["status"] = "failed"
        status["error"] = f"timed out after {args.timeout:.0f} s"
    elif rc != 0:
        status["status"] = "failed"
        status["error"] = f"exit code {rc}: " + " / ".join(tail[-3:])
    elif not fresh:
        status["status"] = "failed"
        status["error"] = f"exit code 0 but {out.name} was not written"
    else:
        status["status"] = "ok"
    print(f"=== {name}: {status['status']} in {status['seconds']:.0f} s", flush=True)
    return status


def load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def collect(
    scripts: dict[str, Path], runs: dict[str, dict[str, Any]], results: Path, quick: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(target rows, script rows) from this run's statuses and the JSON files."""
    rows: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    for name in scripts:
        out = common.result_path(name, quick, results)
        run = runs.get(name)
        payload = load(out)
        src: dict[str, Any] = {"name": name, "file": out.name}
        if run is not None:
            src.update(status=run["status"], seconds=run["seconds"], error=run.get("error"))
        else:
            src["status"] = "not run now" + ("" if payload else " (no result file)")
        if payload and (run is None or run["status"] == "ok"):
            m = payload.get("machine", {})
            src.update(
                timestamp=payload.get("timestamp"),
                wall_seconds=payload.get("wall_seconds"),
                cpu_count=m.get("cpu_count"),
                loadavg_at_start=m.get("loadavg_at_start"),
                loadavg_at_end=m.get("loadavg_at_end"),
            )
            for t in payload.get("targets", []):
                rows.append({**t, "script": name, "timestamp": payload.get("timestamp")})
        elif run is not None and run["status"] != "ok":
            for number in SCRIPT_TARGETS.get(name, []):
                rows.append(
                    {
                        "target": number,
                        "id": number,
                        "what": f"bench_{name}.py failed",
                        "measured_text": "—",
                        "goal": "—",
                        "met": None,
                        "failed": True,
                        "detail": run.get("error", ""),
                        "conditions": [],
                        "script": name,
                    }
                )
        sources.append(src)
    return rows, sources


def result_text(row: dict[str, Any]) -> str:
    return "**failed**" if row.get("failed") else common.met_text(row["met"])


def summary_markdown(summary: dict[str, Any]) -> str:
    rows, sources = summary["targets"], summary["scripts"]
    met = sum(r["met"] is True for r in rows)
    missed = sum(r["met"] is False for r in rows)
    other = len(rows) - met - missed
    lines = [
        "# Benchmark summary: issue 5's targets"
        + (" (quick smoke run)" if summary["quick"] else ""),
        "",
        f"- written {summary['timestamp']} by `python benchmarks/run.py"
        + (" --quick" if summary["quick"] else "")
        + "`; "
        f"{met} met, {missed} missed, {other} not measured or failed",
        f"- machine: {summary['cpu_count']} CPUs; load average when the summary was written "
        f"{common.loads(summary['loadavg'])}; each script's own load averages are below and in "
        "its report",
        "- ratios are anchor seconds / daskfuse seconds (median fit seconds over the repeats, "
        "same data, same LocalCluster of 2 workers x 1 thread unless said)",
    ]
    if summary["quick"]:
        lines.append(
            "- **quick run**: tiny sizes and 1 repeat, to check that every script runs; the "
            "figures are not measurements of the targets"
        )
    lines += [
        "",
        *common.md_head(
            ["#", "target", "what", "measured", "goal", "result", "details", "script (run)"]
        ),
    ]
    by_target: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_target.setdefault(str(r["target"]), []).append(r)
    titles = {**common.ISSUE_TARGETS, **LATER_TARGETS}
    numbers = list(titles) + sorted(set(by_target) - set(titles))
    for number in numbers:
        title = titles.get(number, f"target {number}")
        group = by_target.get(number)
        if not group:
            script = next((n for n, ts in SCRIPT_TARGETS.items() if number in ts), None)
            lines.append(
                f"| {number} | {title} | — | — | — | not measured | no result "
                f"(bench_{script}.py not present or not run) | — |"
            )
            continue
        for i, r in enumerate(group):
            detail = common.target_detail(r)
            when = (r.get("timestamp") or "")[:16].replace("T", " ")
            lines.append(
                f"| {r['id']} | {title if i == 0 else ''} | {common.md_cell(r['what'], 160)} | "
                f"{r['measured_text']} | {r['goal']} | {result_text(r)} | "
                f"{common.md_cell(detail, 400)} | {r['script']}"
                + (f" ({when})" if when else "")
                + " |"
            )
    lines += [
        "",
        "## Scripts",
        "",
        *common.md_head(
            [
                "script",
                "this run",
                "seconds",
                "result file",
                "measured at",
                "load (1/5/15 min) at start",
                "at end",
                "error",
            ]
        ),
    ]
    for s in sources:
        cells = [
            f"bench_{s['name']}.py",
            s["status"],
            common.fmt(s.get("seconds"), 0),
            s["file"],
            s.get("timestamp") or "—",
            common.loads(s.get("loadavg_at_start")),
            common.loads(s.get("loadavg_at_end")),
            common.md_cell(s.get("error") or "", 200),
        ]
        lines.append(common.md_row(cells))
    lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.make_parser(__doc__)
    names = list(discover())
    parser.add_argument("--quick", action="store_true", help="run every script with --quick")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"scripts: {', '.join(names)}")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="scripts to skip")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the scripts")
    parser.add_argument("--timeout", type=float, help="seconds per script (default: none)")
    parser.add_argument(
        "--args",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="extra arguments for one script, e.g. --args 'scaling=--workers 1 2'",
    )
    parser.add_argument(
        "--summary-only", action="store_true", help="run nothing; rebuild the summary"
    )
    parser.add_argument("--results", type=Path, default=common.RESULTS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true", help="list the scripts and exit")
    args = parser.parse_args(argv)
    unknown = set(args.only or []) | set(args.skip)
    unknown -= set(names)
    if unknown:
        parser.error(f"unknown scripts {sorted(unknown)}; known: {', '.join(names)}")
    args.extra = {}
    for item in args.args:
        name, sep, rest = item.partition("=")
        if not sep or name not in names:
            parser.error(f"--args expects NAME=ARGS with NAME in {names}; got {item!r}")
        args.extra[name] = args.extra.get(name, []) + rest.split()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scripts = discover()
    if args.list:
        for name, path in scripts.items():
            print(f"{name:10s} {path.name}")
        return 0
    selected = [n for n in scripts if (not args.only or n in args.only) and n not in args.skip]
    runs: dict[str, dict[str, Any]] = {}
    t0 = time.time()
    if not args.summary_only:
        for name in selected:
            out = common.result_path(name, args.quick, args.results)
            log = args.results / "logs" / f"{out.stem}.log"
            runs[name] = run_script(name, scripts[name], args, out, log)
    rows, sources = collect(scripts, runs, args.results, args.quick)
    summary = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "wall_seconds": time.time() - t0,
        "cpu_count": os.cpu_count(),
        "loadavg": common.loadavg(),
        "issue_targets": common.ISSUE_TARGETS,
        "scripts": sources,
        "targets": rows,
    }
    stem = "summary_quick" if args.quick else "summary"
    out = args.results / f"{stem}.json"
    common.write_outputs(out, summary, summary_markdown(summary))
    failed = [n for n, r in runs.items() if r["status"] != "ok"]
    if failed:
        print(f"failed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
