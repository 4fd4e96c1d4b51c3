"""Orchestration overhead: 1,000 small partitions fused with ``split_every=8``.

Issue 5, target 5: fitting one cheap model per partition on 1,000 partitions of
1,000 x 5 rows, the orchestration overhead, ``(fit wall time - sum of the partition
fit times / workers) / partitions``, should be at most 5 ms per partition; fusing
1,000 fitted models should take at most 2 s.

Cases
-----
``fit-linreg``
    ``FusedRegressor(LinearRegression(), fusion="weighted", split_every=8)``.
``fit-logreg``
    ``FusedClassifier(LogisticRegression(), fusion="weighted", split_every=8)``: a
    classifier also needs the global class list, one more pass over the labels.
``fuse-linreg``, ``fuse-logreg``
    ``daskfuse.fuse(models, fusion="weighted", weights=rows)`` on 1,000
    ``LinearRegression`` / ``LogisticRegression`` models fitted beforehand (untimed) in
    the driver on the same partitions.

For each fit the script records the wall time, the sum of ``partition_report_``'s
``fit_seconds`` (the estimator's ``fit`` alone) and ``task_seconds`` (the whole
partition task: concatenation, checks, fit, summary), and, separately, the time of
``fit_graph`` (the client-side part: validation, planning, the class pass, graph
construction; included in the fit wall). Overhead per partition is reported against
both sums; the target uses ``fit_seconds`` as the issue defines it.

Usage
-----
::

    python benchmarks/bench_overhead.py            # 1,000 partitions x 1,000 rows, 3 repeats
    python benchmarks/bench_overhead.py --quick    # 200 partitions, 1 repeat

Results go to ``benchmarks/results/overhead.json`` and ``overhead.md`` (``--quick``:
``overhead_quick.*``); ``benchmarks/run.py`` collects the ``"targets"``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import _common as common
import dask.array as da
import numpy as np

DEFAULTS = {"partitions": 1000, "repeats": 3}
QUICK_DEFAULTS = {"partitions": 200, "repeats": 1}
#: issue 5, target 5
OVERHEAD_MS = 5.0
FUSE_SECONDS = 2.0
WARM_MODULES = ("sklearn.linear_model", "daskfuse", "daskfuse.fusion.average")


def make_data(partitions: int, rows: int, features: int, seed: int):
    """``X`` (``partitions`` chunks of ``rows`` rows), a regression and a 0/1 target."""
    rng = da.random.default_rng(seed)
    n = partitions * rows
    X = rng.standard_normal((n, features), chunks=(rows, features))
    coef = np.linspace(-1.0, 1.0, features)
    y_reg = X @ coef + 0.5 * rng.standard_normal(n, chunks=rows)
    y_cls = (y_reg > 0).astype(np.int64)
    return X, y_reg, y_cls


def build_cases(split_every: int) -> list[dict[str, Any]]:
    """The two fitted cases; imports are lazy."""

    def linreg():
        from sklearn.linear_model import LinearRegression

        from daskfuse import FusedRegressor

        return FusedRegressor(LinearRegression(), fusion="weighted", split_every=split_every)

    def logreg():
        from sklearn.linear_model import LogisticRegression

        from daskfuse import FusedClassifier

        return FusedClassifier(LogisticRegression(), fusion="weighted", split_every=split_every)

    return [
        {
            "key": "fit-linreg",
            "label": f"FusedRegressor(LinearRegression), weighted, split_every={split_every}",
            "make": linreg,
            "y": "reg",
        },
        {
            "key": "fit-logreg",
            "label": f"FusedClassifier(LogisticRegression), weighted, split_every={split_every}",
            "make": logreg,
            "y": "cls",
        },
    ]


def run_fit_case(case, X, y, args, client, baseline) -> dict[str, Any]:
    """Fit ``repeats`` times; overhead per repeat from its own partition report."""
    rec: dict[str, Any] = {"key": case["key"], "label": case["label"], "status": "ok"}
    times = common.FitTimes()
    per_repeat = []
    try:
        template = case["make"]()
        for _ in range(args.repeats):
            model, _ = common.time_fits(template, (X, y), 1, client, baseline, times=times)
            report = model.partition_report_
            per_repeat.append(
                {
                    "wall": times.seconds[-1],
                    "fit_sum": float(report["fit_seconds"].sum()),
                    "task_sum": float(report["task_seconds"].sum()),
                    "partitions": int(model.n_partitions_),
                    "workers": int(report["worker"].nunique()),
                }
            )
        # the client-side part alone (untimed above as a part of fit)
        graph_seconds = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            template.fit_graph(X, y)
            graph_seconds.append(time.perf_counter() - t0)
    except Exception as exc:  # a failing case must not stop the run
        rec.update(common.error_fields(exc))
        rec["fit_seconds"] = times.seconds
        return rec
    w = args.workers * args.threads
    for r in per_repeat:
        r["overhead_ms_per_partition"] = 1e3 * (r["wall"] - r["fit_sum"] / w) / r["partitions"]
        r["overhead_vs_task_ms_per_partition"] = (
            1e3 * (r["wall"] - r["task_sum"] / w) / r["partitions"]
        )
    med = statistics.median
    rec.update(
        fit_seconds=times.seconds,
        fit_seconds_median=times.median,
        memory=times.memory,
        partitions=per_repeat[-1]["partitions"],
        workers_used=per_repeat[-1]["workers"],
        per_repeat=per_repeat,
        fit_sum_median=med(r["fit_sum"] for r in per_repeat),
        task_sum_median=med(r["task_sum"] for r in per_repeat),
        overhead_ms_per_partition=med(r["overhead_ms_per_partition"] for r in per_repeat),
        overhead_vs_task_ms_per_partition=med(
            r["overhead_vs_task_ms_per_partition"] for r in per_repeat
        ),
        fit_graph_seconds=graph_seconds,
        fit_graph_seconds_median=med(graph_seconds),
        slots=w,
    )
    return rec


def run_fuse_case(key: str, label: str, models: list, weights: list, repeats: int):
    """Time ``daskfuse.fuse`` on already fitted models (in the driver)."""
    from daskfuse import fuse

    rec: dict[str, Any] = {"key": key, "label": label, "status": "ok", "models": len(models)}
    try:
        _, times = common.time_call(
            lambda: fuse(models, fusion="weighted", weights=weights), repeats, None
        )
        rec.update(fit_seconds=times.seconds, fit_seconds_median=times.median, memory=times.memory)
    except Exception as exc:  # a failing case must not stop the run
        rec.update(common.error_fields(exc))
    return rec


def targets(results: list[dict[str, Any]], partitions: int) -> list[dict[str, Any]]:
    """Issue 5, target 5."""
    by = {r["key"]: r for r in results}
    out = []
    for tid, key in (("5a", "fit-linreg"), ("5b", "fit-logreg")):
        r = by.get(key, {})
        ok = r.get("status") == "ok"
        out.append(
            common.target(
                "5",
                tid,
                f"orchestration overhead per partition, {r.get('label', key)}, "
                f"{partitions:,} partitions",
                r.get("overhead_ms_per_partition") if ok else None,
                "<=",
                OVERHEAD_MS,
                " ms",
                detail=(
                    f"wall {r['fit_seconds_median']:.2f} s, sum of partition fit s "
                    f"{r['fit_sum_median']:.2f} / {r['slots']} workers; vs whole partition "
                    f"tasks {r['overhead_vs_task_ms_per_partition']:.2f} ms; client side "
                    f"(fit_graph) {r['fit_graph_seconds_median']:.2f} s"
                )
                if ok
                else r.get("error", "not run"),
            )
        )
    for tid, key in (("5c", "fuse-linreg"), ("5d", "fuse-logreg")):
        r = by.get(key, {})
        ok = r.get("status") == "ok"
        out.append(
            common.target(
                "5",
                tid,
                f"{r.get('label', key)}",
                r.get("fit_seconds_median") if ok else None,
                "<=",
                FUSE_SECONDS,
                " s",
                digits=3,
                detail="" if ok else r.get("error", "not run"),
            )
        )
    return out


def markdown_report(payload: dict[str, Any]) -> str:
    p = payload["parameters"]
    lines = [
        *common.report_head(
            payload,
            "Orchestration overhead benchmark",
            data=[
                f"- data: {p['partitions']:,} partitions of {p['rows']:,} x {p['features']} "
                "float64 (standard normal), persisted"
            ],
            notes=[
                common.MEMORY_LINE,
                "- overhead per partition = (fit wall - sum of partition_report_.fit_seconds "
                "/ workers) / partitions (issue 5's definition); `vs tasks` uses "
                "task_seconds (the whole partition task) instead of fit_seconds",
            ],
        ),
        "",
        "## Fits",
        "",
        *common.md_head(
            [
                "case",
                "partitions",
                "fit wall s (median)",
                "fit wall s (all)",
                "sum fit s",
                "sum task s",
                "overhead ms / partition",
                "vs tasks ms / partition",
                "fit_graph s (client side)",
                "peak MiB",
                "rise MiB",
                "note",
            ]
        ),
    ]
    for r in payload["results"]:
        if not r["key"].startswith("fit-"):
            continue
        peak, rise = common.memory_cells(r.get("memory"), "dask")
        lines.append(
            common.md_row(
                [
                    r["label"],
                    f"{r.get('partitions', p['partitions']):,}",
                    common.fmt(r.get("fit_seconds_median")),
                    common.fmt_times(r.get("fit_seconds", [])),
                    common.fmt(r.get("fit_sum_median")),
                    common.fmt(r.get("task_sum_median")),
                    common.fmt(r.get("overhead_ms_per_partition")),
                    common.fmt(r.get("overhead_vs_task_ms_per_partition")),
                    common.fmt(r.get("fit_graph_seconds_median")),
                    peak,
                    rise,
                    common.md_cell(r.get("error", ""), 200),
                ]
            )
        )
    lines += [
        "",
        "## Fusing fitted models (`daskfuse.fuse`, in the driver)",
        "",
        *common.md_head(["case", "models", "s (median)", "s (all)", "note"]),
    ]
    for r in payload["results"]:
        if r["key"].startswith("fuse-"):
            lines.append(
                f"| {r['label']} | {r['models']:,} | {common.fmt(r.get('fit_seconds_median'), 3)} "
                f"| {common.fmt_times(r.get('fit_seconds', []))} "
                f"| {common.md_cell(r.get('error', ''), 200)} |"
            )
    lines += common.targets_section(payload["targets"], 5)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.make_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 partitions")
    parser.add_argument("--partitions", type=int, help="partitions (default 1,000)")
    parser.add_argument("--rows", type=int, default=1000, help="rows per partition")
    parser.add_argument("--features", type=int, default=5, help="features")
    parser.add_argument("--split-every", type=int, default=8, help="fan-in of the fusion tree")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 3)")
    common.add_run_args(parser)
    parser.add_argument("--out", type=Path, help="JSON output (default results/overhead.json)")
    args = parser.parse_args(argv)
    common.complete_args(args, "overhead", DEFAULTS, QUICK_DEFAULTS)
    if min(args.partitions, args.rows, args.features, args.repeats) < 1 or args.split_every < 2:
        parser.error("sizes and repeats must be positive, --split-every >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    results = []
    with common.local_cluster(args.workers, args.threads, WARM_MODULES) as client:
        X, y_reg, y_cls = client.persist(
            list(make_data(args.partitions, args.rows, args.features, args.seed))
        )
        common.wait([X, y_reg, y_cls])
        baseline = common.settle(client)
        machine = common.machine_info(client)
        ys = {"reg": y_reg, "cls": y_cls}
        for case in build_cases(args.split_every):
            print(f"-> {case['key']} x{args.repeats} ...", end=" ", flush=True)
            rec = run_fit_case(case, X, ys[case["y"]], args, client, baseline)
            results.append(rec)
            if rec["status"] == "ok":
                print(
                    f"{rec['fit_seconds_median']:.2f} s, overhead "
                    f"{rec['overhead_ms_per_partition']:.2f} ms / partition",
                    flush=True,
                )
            else:
                print(f"ERROR {rec['error'][:200]}", flush=True)
        gathered = client.compute([X, y_reg, y_cls], sync=True)
        X_np, yr_np, yc_np = (common.as_local(a) for a in gathered)

    # fitted models for daskfuse.fuse, one per partition, untimed
    from sklearn.linear_model import LinearRegression, LogisticRegression

    blocks = range(0, len(X_np), args.rows)
    weights = [min(args.rows, len(X_np) - i) for i in blocks]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lin = [
            LinearRegression().fit(X_np[i : i + args.rows], yr_np[i : i + args.rows])
            for i in blocks
        ]
        log = [
            LogisticRegression().fit(X_np[i : i + args.rows], yc_np[i : i + args.rows])
            for i in blocks
        ]
    for key, label, models in (
        ("fuse-linreg", f"fuse {len(lin):,} LinearRegression models, weighted", lin),
        ("fuse-logreg", f"fuse {len(log):,} LogisticRegression models, weighted", log),
    ):
        print(f"-> {key} x{args.repeats} ...", end=" ", flush=True)
        rec = run_fuse_case(key, label, models, weights, args.repeats)
        results.append(rec)
        print(
            f"{rec['fit_seconds_median']:.3f} s"
            if rec["status"] == "ok"
            else f"ERROR {rec['error'][:200]}",
            flush=True,
        )
    parameters = {
        "quick": args.quick,
        "partitions": args.partitions,
        "rows": args.rows,
        "features": args.features,
        "split_every": args.split_every,
        "repeats": args.repeats,
        "workers": args.workers,
        "threads": args.threads,
        "seed": args.seed,
        "baseline_scheduler_tasks": baseline,
    }
    common.write_run(
        args.out,
        "overhead",
        t_start,
        parameters,
        machine,
        results,
        markdown_report,
        targets=targets(results, args.partitions),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
