"""Growth with the number of rows, and an out-of-core fit.

Issue 5, target 6: with rows x1, x4 and x16 (a fixed partition size, so the number
of partitions grows with the rows) the fit time should grow linearly; and a fit on a
data set larger than the workers' memory limit should complete.

Growth
    ``FusedClassifier(LogisticRegression(), fusion="weighted")`` and
    ``FusedRegressor(Ridge(), fusion="exact")`` on ``base x m`` rows for m in 1, 4,
    16 (data generated and persisted in the cluster for each size; median of
    ``--repeats`` fits). A least-squares line ``seconds = a + b * rows`` is fitted to
    the medians: the slope ``b`` (seconds per million rows), its R² and the ratio
    ``t(x16) / t(x1)`` are reported. Target: R² >= 0.98 (linear) and ``t(x16) / t(x1)
    <= 17.6`` (not super-linear: 16 x 1.1).
Out-of-core
    A fresh ``LocalCluster`` whose workers have a ``memory_limit`` smaller than the
    data (the data even exceed all the workers' limits together); ``X`` and ``y`` are
    generated lazily by the fit's own graph, never persisted. Target: the fit
    completes and no worker restarted (the same worker processes before and after).

Usage
-----
::

    python benchmarks/bench_growth.py            # 250,000 x 20 base; out-of-core 20,000,000 x 20
    python benchmarks/bench_growth.py --quick    # 20,000 base; out-of-core 4,000,000 x 20

The out-of-core workers' limit must leave room for a worker's own footprint (about
250 MiB with scikit-learn imported): above 80% of it dask pauses the worker.

Results go to ``benchmarks/results/growth.json`` and ``growth.md`` (``--quick``:
``growth_quick.*``); ``benchmarks/run.py`` collects the ``"targets"``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import _common as common
import numpy as np

DEFAULTS = {
    "base_rows": 250_000,
    "chunks": 62_500,
    "repeats": 3,
    "ooc_rows": 20_000_000,
    "ooc_chunks": 125_000,
    "ooc_memory_limit": "1GiB",
}
QUICK_DEFAULTS = {
    "base_rows": 20_000,
    "chunks": 5_000,
    "repeats": 1,
    "ooc_rows": 4_000_000,
    "ooc_chunks": 100_000,
    "ooc_memory_limit": "600MiB",
}
MULTIPLIERS = (1, 4, 16)
#: issue 5, target 6
MIN_R2 = 0.98
MAX_GROWTH = 16 * 1.1
WARM_MODULES = ("sklearn.linear_model", "daskfuse", "daskfuse.fusion.exact")


def _block(n: int, block: int, *, coef: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """``n`` rows of standard normal features and a last column: a 0/1 label of a linear rule."""
    rng = np.random.default_rng([seed, stream, block])
    x = rng.standard_normal((n, len(coef)))
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ coef)))).astype(np.float64)
    return np.column_stack([x, y])


def make_data(rows: int, chunk: int, features: int, seed: int, stream: int):
    """Lazy ``X`` (float64) and ``y`` (0/1 int64)."""
    coef = np.linspace(-1.0, 1.0, features)
    block = functools.partial(_block, coef=coef, seed=seed, stream=stream)
    return common.make_dask_data(block, rows, features, chunk)


def build_cases() -> list[dict[str, Any]]:
    def logreg():
        from sklearn.linear_model import LogisticRegression

        from daskfuse import FusedClassifier

        return FusedClassifier(LogisticRegression(), fusion="weighted")

    def ridge():
        from sklearn.linear_model import Ridge

        from daskfuse import FusedRegressor

        return FusedRegressor(Ridge(), fusion="exact")

    return [
        {"key": "logreg", "label": "FusedClassifier(LogisticRegression), weighted", "make": logreg},
        {"key": "ridge", "label": "FusedRegressor(Ridge), exact", "make": ridge},
    ]


def linear_fit(rows: list[int], seconds: list[float]) -> dict[str, float]:
    """Least-squares ``seconds = a + b * rows``: slope per million rows, intercept, R²."""
    x = np.asarray(rows, dtype=float) / 1e6
    t = np.asarray(seconds, dtype=float)
    b, a = np.polyfit(x, t, 1)
    resid = t - (a + b * x)
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 1.0
    return {
        "slope_seconds_per_million_rows": float(b),
        "intercept_seconds": float(a),
        "r2": r2,
        "growth_x16": float(t[-1] / t[0]),
        "loglog_exponent": float(np.log(t[-1] / t[0]) / np.log(x[-1] / x[0])),
    }


def run_growth(args, client, baseline) -> list[dict[str, Any]]:
    results = []
    cases = build_cases()
    for m in MULTIPLIERS:
        rows = args.base_rows * m
        X, y = client.persist(list(make_data(rows, args.chunks, args.features, args.seed, m)))
        common.wait([X, y])
        for case in cases:
            rec = {
                "key": f"{case['key']}-x{m}",
                "case": case["key"],
                "label": case["label"],
                "multiplier": m,
                "rows": rows,
                "partitions": X.numblocks[0],
                "status": "ok",
            }
            print(f"-> {rec['key']} ({rows:,} rows) x{args.repeats} ...", end=" ", flush=True)
            times = common.FitTimes()
            try:
                common.time_fits(
                    case["make"](), (X, y), args.repeats, client, baseline, times=times
                )
                rec.update(
                    fit_seconds=times.seconds, fit_seconds_median=times.median, memory=times.memory
                )
                print(f"{times.median:.2f} s", flush=True)
            except Exception as exc:  # a failing case must not stop the run
                rec.update(common.error_fields(exc))
                rec["fit_seconds"] = times.seconds
                print(f"ERROR {rec['error'][:200]}", flush=True)
            results.append(rec)
        del X, y
        common.settle(client)
    return results


def _pid() -> int:
    return os.getpid()


def run_out_of_core(args) -> dict[str, Any]:
    """Fit on lazily generated data larger than the workers' memory limit."""
    from dask.utils import parse_bytes
    from sklearn.linear_model import LogisticRegression

    from daskfuse import FusedClassifier

    limit = parse_bytes(args.ooc_memory_limit)
    data_bytes = args.ooc_rows * (args.features + 1) * 8
    rec: dict[str, Any] = {
        "key": "out-of-core",
        "label": "FusedClassifier(LogisticRegression), weighted, lazily generated X",
        "rows": args.ooc_rows,
        "chunks": args.ooc_chunks,
        "memory_limit_per_worker_mib": limit / common.MIB,
        "memory_limit_total_mib": args.workers * limit / common.MIB,
        "data_mib": data_bytes / common.MIB,
        "status": "ok",
        "completed": False,
    }
    print(
        f"-> out-of-core: {args.ooc_rows:,} x {args.features} ({data_bytes / 2**30:.2f} GiB "
        f"generated lazily), {args.workers} workers with memory_limit={args.ooc_memory_limit}",
        flush=True,
    )
    try:
        with common.local_cluster(
            args.workers, args.threads, WARM_MODULES, memory_limit=args.ooc_memory_limit
        ) as client:
            X, y = make_data(args.ooc_rows, args.ooc_chunks, args.features, args.seed, 99)
            rec["partitions"] = X.numblocks[0]
            pids = client.run(_pid)
            est = FusedClassifier(LogisticRegression(), fusion="weighted")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                peak = common.PeakMemory(client)
                with peak:
                    t0 = time.perf_counter()
                    est.fit(X, y)
                    rec["fit_seconds"] = [time.perf_counter() - t0]
            rec["fit_seconds_median"] = rec["fit_seconds"][0]
            rec["memory"] = peak.result()
            after = client.run(_pid)
            rec["worker_pids_before"] = sorted(pids.values())
            rec["worker_pids_after"] = sorted(after.values())
            rec["workers_restarted"] = len(set(pids.values()) - set(after.values()))
            rec["no_restart"] = pids == after
            rec["completed"] = bool(hasattr(est, "fused_estimator_"))
            rec["partitions_fitted"] = int(est.n_partitions_)
            rec["train_rows_in_report"] = int(est.partition_report_["rows"].sum())
        print(
            f"   completed in {rec['fit_seconds_median']:.1f} s, no restart: {rec['no_restart']}, "
            f"peak worker {rec['memory'].get('worker_peak_mib', 0):,.0f} MiB",
            flush=True,
        )
    except Exception as exc:  # reported as not completed
        rec.update(common.error_fields(exc))
        print(f"   ERROR {rec['error'][:200]}", flush=True)
    return rec


def summarize(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    fits = {}
    for case in build_cases():
        rows = [r for r in results if r.get("case") == case["key"] and r["status"] == "ok"]
        if len(rows) == len(MULTIPLIERS):
            fits[case["key"]] = {
                "label": case["label"],
                **linear_fit([r["rows"] for r in rows], [r["fit_seconds_median"] for r in rows]),
            }
    return fits


def targets(fits: dict[str, Any], ooc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for tid, key in (("6a", "logreg"), ("6b", "ridge")):
        f = fits.get(key)
        label = f["label"] if f else key
        out.append(
            common.target(
                "6",
                tid,
                f"{label}: R² of the linear fit of seconds vs rows (x1, x4, x16)",
                f["r2"] if f else None,
                ">=",
                MIN_R2,
                digits=4,
                conditions=[
                    (
                        f"t(x16) / t(x1) <= {MAX_GROWTH:g}",
                        None if f is None else f["growth_x16"] <= MAX_GROWTH,
                    )
                ],
                detail=(
                    f"slope {f['slope_seconds_per_million_rows']:.3f} s per million rows, "
                    f"intercept {f['intercept_seconds']:.2f} s, t(x16)/t(x1) "
                    f"{f['growth_x16']:.2f}, log-log exponent {f['loglog_exponent']:.2f}"
                )
                if f
                else "a size failed",
            )
        )
    what = "out-of-core fit (data larger than the workers' memory limits) completes, no restart"
    if ooc.get("status") == "skipped":
        out.append(common.target("6", "6c", what, None, ">=", 1, detail="skipped (--no-ooc)"))
        return out
    done = bool(ooc.get("completed")) and bool(ooc.get("no_restart"))
    larger = ooc["data_mib"] > ooc["memory_limit_per_worker_mib"]
    t = common.target(
        "6",
        "6c",
        what,
        1.0 if done else 0.0,
        ">=",
        1,
        conditions=[("data larger than a worker's memory_limit", larger)],
        detail=(
            f"{ooc['rows']:,} rows, {ooc['data_mib']:,.0f} MiB of data vs memory_limit "
            f"{ooc['memory_limit_per_worker_mib']:,.0f} MiB per worker "
            f"({ooc['memory_limit_total_mib']:,.0f} MiB in all); completed "
            f"{ooc.get('completed')}, no restart {ooc.get('no_restart')}"
            + (
                f", {ooc['fit_seconds_median']:.1f} s, peak worker "
                f"{ooc['memory'].get('worker_peak_mib', 0):,.0f} MiB"
                if ooc.get("fit_seconds_median")
                else ""
            )
            + (f"; {ooc['error']}" if ooc.get("error") else "")
        ),
    )
    t["measured_text"] = "completed" if done else "failed"
    out.append(t)
    return out


def markdown_report(payload: dict[str, Any]) -> str:
    p = payload["parameters"]
    lines = [
        *common.report_head(
            payload,
            "Growth benchmark",
            data=[
                f"- data: {p['base_rows']:,} x {p['features']} float64 times "
                f"{', '.join(map(str, p['multipliers']))}, row chunks of {p['chunks']:,} "
                "(the number of partitions grows with the rows), persisted for each size"
            ],
            notes=[common.MEMORY_LINE],
        ),
        "",
        *common.md_head(
            [
                "case",
                "x",
                "rows",
                "partitions",
                "fit s (median)",
                "fit s (all)",
                "s per million rows",
                "peak MiB",
                "rise MiB",
                "note",
            ]
        ),
    ]
    for r in payload["results"]:
        peak, rise = common.memory_cells(r.get("memory"), "dask")
        med = r.get("fit_seconds_median")
        lines.append(
            f"| {r['label']} | {r['multiplier']} | {r['rows']:,} | {r['partitions']} | "
            f"{common.fmt(med)} | {common.fmt_times(r.get('fit_seconds', []))} | "
            f"{common.fmt(None if med is None else med / (r['rows'] / 1e6))} | {peak} | {rise} | "
            f"{common.md_cell(r.get('error', ''), 200)} |"
        )
    lines += [
        "",
        "Least-squares line `seconds = intercept + slope * rows`:",
        "",
        *common.md_head(
            [
                "case",
                "slope (s per million rows)",
                "intercept s",
                "R²",
                "t(x16) / t(x1)",
                "log-log exponent",
            ]
        ),
    ]
    for f in payload["linear_fits"].values():
        lines.append(
            f"| {f['label']} | {f['slope_seconds_per_million_rows']:.3f} | "
            f"{f['intercept_seconds']:.2f} | {f['r2']:.4f} | {f['growth_x16']:.2f} | "
            f"{f['loglog_exponent']:.2f} |"
        )
    o = payload["out_of_core"]
    mem = o.get("memory") or {}
    if o.get("status") == "skipped":
        lines += ["", "## Out-of-core", "", "- skipped (--no-ooc)"]
    else:
        lines += [
            "",
            "## Out-of-core",
            "",
            f"- {o['label']}: {o['rows']:,} x {p['features']} ({o['data_mib']:,.0f} MiB) in "
            f"{o.get('partitions', '?')} partitions of {o['chunks']:,} rows, generated lazily "
            f"by the fit's graph; LocalCluster({p['workers']} workers x {p['threads']} thread, "
            f"memory_limit={p['ooc_memory_limit']} each, "
            f"{o['memory_limit_total_mib']:,.0f} MiB in all)",
            f"- completed: {o.get('completed')}; same worker processes before and after (no "
            f"restart): {o.get('no_restart')}; "
            f"fit {common.fmt(o.get('fit_seconds_median'), 1)} s; "
            f"peak worker RSS {common.fmt(mem.get('worker_peak_mib'), 0)} MiB"
            + (f"; error: {o['error']}" if o.get("error") else ""),
        ]
    lines += common.targets_section(payload["targets"], 6)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.make_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 1 repeat")
    parser.add_argument("--base-rows", type=int, help="rows at x1 (default 250,000)")
    parser.add_argument("--features", type=int, default=20, help="features")
    parser.add_argument("--chunks", type=int, help="rows per partition (default 62,500)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 3)")
    parser.add_argument("--ooc-rows", type=int, help="out-of-core rows (default 20,000,000)")
    parser.add_argument("--ooc-chunks", type=int, help="out-of-core rows per partition")
    parser.add_argument("--ooc-memory-limit", help="memory_limit of each out-of-core worker")
    parser.add_argument("--no-ooc", action="store_true", help="skip the out-of-core case")
    common.add_run_args(parser)
    parser.add_argument("--out", type=Path, help="JSON output (default results/growth.json)")
    args = parser.parse_args(argv)
    common.complete_args(args, "growth", DEFAULTS, QUICK_DEFAULTS)
    counts = (args.base_rows, args.chunks, args.repeats, args.ooc_rows, args.ooc_chunks)
    common.check_positive(parser, counts, "sizes and repeats must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    with common.local_cluster(args.workers, args.threads, WARM_MODULES) as client:
        baseline = common.settle(client)
        machine = common.machine_info(client)
        results = run_growth(args, client, baseline)
    ooc = {"status": "skipped"} if args.no_ooc else run_out_of_core(args)
    fits = summarize(results)
    parameters = {
        "quick": args.quick,
        "base_rows": args.base_rows,
        "multipliers": list(MULTIPLIERS),
        "features": args.features,
        "chunks": args.chunks,
        "repeats": args.repeats,
        "workers": args.workers,
        "threads": args.threads,
        "seed": args.seed,
        "ooc_rows": args.ooc_rows,
        "ooc_chunks": args.ooc_chunks,
        "ooc_memory_limit": args.ooc_memory_limit,
    }
    common.write_run(
        args.out,
        "growth",
        t_start,
        parameters,
        machine,
        results,
        markdown_report,
        linear_fits=fits,
        out_of_core=ooc,
        targets=targets(fits, ooc),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
